"""Fixtures of the cloud's tests: a copy of the example layout to edit, and a link publishing as an
edge node does."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.mqtt import BrokerConfig, MqttConnection
from tests.conftest import EXAMPLE_LAYOUT


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A copy of the example depot's layout that a test's cloud may rewrite."""
    path = tmp_path / "facility.yaml"
    shutil.copy(EXAMPLE_LAYOUT, path)
    return path


@pytest.fixture
def edge(mqtt_url: str) -> Iterator[MqttConnection]:
    """A link publishing as the edge nodes do."""
    link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    yield link
    link.stop()
