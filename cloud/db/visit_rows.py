"""The kept station visits (table station_visits), which the Grafana panels read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, delete, func, or_
from sqlmodel import Session, col, select

from cloud.db.models import EventRow, ObservationRow, PositionRow, StationVisitRow
from cloud.fse import EventKind
from cloud.reports import Visit


def replace_visits(engine: Engine, flow: str, since: datetime, visits: list[Visit]) -> None:
    """Put `visits` (every visit of the flow that overlaps `since` onwards) in place of those kept."""
    with Session(engine) as session:
        session.exec(
            delete(StationVisitRow).where(
                col(StationVisitRow.flow) == flow,
                or_(col(StationVisitRow.left).is_(None), col(StationVisitRow.left) > since),
            )
        )
        session.add_all(
            StationVisitRow(
                flow=flow,
                station=v.station,
                track_id=v.track_id,
                loco_id=v.loco_id,
                arrived=v.arrived,
                left=v.left,
            )
            for v in visits
        )
        session.commit()


def first_position(engine: Engine, flow: str) -> datetime | None:
    """When the flow's first position was recorded (None before any)."""
    with Session(engine) as session:
        first: datetime | None = session.exec(
            select(func.min(PositionRow.at)).where(PositionRow.flow == flow)
        ).one()
    return first


def backlog_since(engine: Engine, flow: str, received_after: datetime) -> datetime | None:
    """The earliest capture time of the flow's backlog detections received after `received_after`."""
    with Session(engine) as session:
        first: datetime | None = session.exec(
            select(func.min(ObservationRow.captured_at)).where(
                ObservationRow.flow == flow,
                col(ObservationRow.historical).is_(True),
                col(ObservationRow.received_at) > received_after,
            )
        ).one()
    return first


def next_change(engine: Engine, flow: str, after: datetime) -> datetime | None:
    """The first position recorded or departure after `after` (None when nothing happened since)."""
    with Session(engine) as session:
        moved: datetime | None = session.exec(
            select(func.min(PositionRow.at)).where(PositionRow.flow == flow, col(PositionRow.at) > after)
        ).one()
        left: datetime | None = session.exec(
            select(func.min(EventRow.at)).where(
                EventRow.flow == flow, EventRow.kind == EventKind.DEPARTED.value, col(EventRow.at) > after
            )
        ).one()
    return min((t for t in (moved, left) if t is not None), default=None)
