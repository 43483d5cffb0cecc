"""What the station reports read: the recorded positions and departures of the locomotives that were
in the facility during a period, and their settled identities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud.db.models import EventRow, IdentityRow, LocomotiveRow, PositionRow
from cloud.fse import EventKind
from cloud.reports import Stood


@dataclass(frozen=True)
class ReportInputs:
    """A period's positions (by locomotive, then time), departures and identities (series, number)."""

    stood: list[Stood]
    departures: dict[str, datetime]
    identities: dict[str, tuple[str | None, str | None]]


def report_inputs(engine: Engine, flow: str, start: datetime, end: datetime) -> ReportInputs:
    """The flow's locomotives first seen before `end` and not departed before `start`, with every
    position recorded before `end`."""
    with Session(engine) as session:
        departed = session.exec(
            select(EventRow.loco_id, EventRow.at)
            .where(EventRow.flow == flow, EventRow.kind == EventKind.DEPARTED.value, col(EventRow.at) < end)
            .order_by(col(EventRow.at), col(EventRow.id))
        ).all()
        departures: dict[str, datetime] = {}
        for loco_id, at in departed:
            if loco_id is not None:
                departures.setdefault(loco_id, at)  # its first departure ends its stay
        candidates = session.exec(
            select(LocomotiveRow.loco_id).where(
                LocomotiveRow.flow == flow, col(LocomotiveRow.first_seen) < end
            )
        ).all()
        there = [i for i in candidates if i not in departures or departures[i] >= start]
        stood: list[Stood] = []
        identities: dict[str, tuple[str | None, str | None]] = {}
        for chunk in (there[k : k + 500] for k in range(0, len(there), 500)):
            rows = session.exec(
                select(PositionRow)
                .where(
                    PositionRow.flow == flow, col(PositionRow.loco_id).in_(chunk), col(PositionRow.at) < end
                )
                .order_by(col(PositionRow.loco_id), col(PositionRow.at), col(PositionRow.id))
            )
            stood += [Stood(r.loco_id, r.track_id, r.at, r.station) for r in rows]
            for row in session.exec(select(IdentityRow).where(col(IdentityRow.loco_id).in_(chunk))):
                identities[row.loco_id] = (row.series, row.plate)
        return ReportInputs(stood, departures, identities)
