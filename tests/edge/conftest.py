"""Fixtures of the edge tests: a site of their own on the test broker, and what it carries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.collector import Collector


@pytest.fixture
def site() -> str:
    """A site no other test publishes under, so retained messages of others never reach this one."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def collector(mqtt_url: str, site: str) -> Iterator[Collector]:
    """Everything published under the test's site."""
    c = Collector(mqtt_url, site)
    yield c
    c.stop()
