"""A locomotive's fields, declared once: the estimator's locomotive, its table row and the API's view of
it derive from these bases (SQLModel models without a table), so none of them lists the fields again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from cloud.db.types import UtcDateTime


class LocoBase(SQLModel):
    """A locomotive as the estimator reports it, its fields declared once: the estimator's
    `cloud.fse.Loco`, the table row (`cloud.db.models.LocomotiveRow`) and the API's `LocoPublic` all
    derive from it, so a field added here (and to the table by a migration) is tracked, stored, shown
    and kept in snapshots. No table of its own."""

    loco_id: str = Field(primary_key=True, max_length=32)
    track_id: str = Field(max_length=64)
    start_m: float
    end_m: float
    start_seen: bool
    end_seen: bool
    station: str | None = Field(max_length=64)
    moving: bool
    # A column type, not a Column (`_utc`), as the table row inherits these fields; Field called here,
    # so that type checkers know the field has no default.
    first_seen: datetime = Field(sa_type=UtcDateTime, nullable=False)
    last_seen: datetime = Field(sa_type=UtcDateTime, nullable=False)
    confidence: float


class LocoKept(LocoBase):
    """What the estimator also keeps of a locomotive, so that it carries on after a restart, and the
    API does not show; where it last stood is kept as well, by `Loco` and the row each in its own form.
    No table of its own."""

    still_since: datetime = Field(sa_type=UtcDateTime, nullable=False)
    length_m: float | None  # once both ends were seen at once
