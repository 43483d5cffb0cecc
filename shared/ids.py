"""Identifiers that travel in MQTT topics, so they must be single, wildcard-free topic levels."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


def is_identifier(value: str) -> bool:
    """Whether `value` can stand as one MQTT topic level and a database key."""
    return bool(_ID_RE.match(value))
