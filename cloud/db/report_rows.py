"""What the station reports read: the recorded positions and departures of the locomotives that were
in the facility during a period, and their settled identities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from cloud.backlog_replay import HANDOVER, backlog_windows, corrected, replay
from cloud.db.models import EventRow, IdentityRow, LocomotiveRow, ObservationRow, PositionRow
from cloud.fse import EventKind, FseSettings, Observation
from cloud.reports import Stood
from cloud.state_store import StateStore, stored_observation
from shared.layout import Facility


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


def historical_times(engine: Engine, flow: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
    """(track, capture time) of the flow's detections that arrived as backlog, captured in [start, end)."""
    with Session(engine) as session:
        rows = session.exec(
            select(ObservationRow.track_id, ObservationRow.captured_at).where(
                ObservationRow.flow == flow,
                col(ObservationRow.historical).is_(True),
                col(ObservationRow.captured_at) >= start,
                col(ObservationRow.captured_at) < end,
            )
        ).all()
    return [(track_id, at) for track_id, at in rows]


def observations_of(
    engine: Engine, flow: str, camera_ids: list[str], after: datetime, up_to: datetime
) -> list[Observation]:
    """The flow's stored observations of the cameras captured in (after, up_to], oldest first."""
    with Session(engine) as session:
        rows = session.exec(
            select(ObservationRow)
            .where(
                ObservationRow.flow == flow,
                col(ObservationRow.camera_id).in_(camera_ids),
                col(ObservationRow.captured_at) > after,
                col(ObservationRow.captured_at) <= up_to,
            )
            .order_by(col(ObservationRow.captured_at))
        ).all()
    return [stored_observation(row) for row in rows]


def replayed_inputs(
    engine: Engine,
    flow: str,
    start: datetime,
    end: datetime,
    facility: Facility,
    settings: FseSettings,
    step: timedelta,
) -> ReportInputs:
    """`report_inputs` with every window the flow knows only from backlog replayed from the stored
    observations (cloud.backlog_replay), stepping by `step`."""
    inputs = report_inputs(engine, flow, start, end)
    windows = backlog_windows(historical_times(engine, flow, start - HANDOVER, end))
    if not windows:
        return inputs
    store = StateStore(engine, flow)
    replays = []
    for window in windows:
        past = store.past(window.start, settings.max_age)
        cameras = list(facility.cameras_on_track(window.track_id))
        seen = observations_of(engine, flow, cameras, window.start - settings.max_age, window.handover)
        replays.append(replay(facility, window, past.locos if past else [], seen, step, settings))
    stood, departures = corrected(inputs.stood, inputs.departures, replays)
    return ReportInputs(stood, departures, inputs.identities)
