"""Query parameters every route bounds the same way, so that no value a client can send reaches the
database or the estimator as something they cannot take (a 422 with the reason instead of a 500)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

from shared.messages import EARLIEST, LATEST

# Beyond this, paging through events is a mistake or an attack (and 2^63 overflows the database).
MAX_OFFSET = 10_000_000


def _zoned_in_era(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-03-02T10:00:00Z")
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be within the years {EARLIEST.year}-{LATEST.year - 1}")
    return value


# An instant a client asks about: with a zone, within the years the contract allows.
ApiTime = Annotated[datetime, AfterValidator(_zoned_in_era)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip (newest first).")]
