"""Persistence of one flow's live state: locomotives (so a restart resumes them, ids and all), their
position history, events, and periodic snapshots of the whole facility for questions about the past.
Every row carries the flow; each flow's estimator has a store of its own."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Engine, func
from sqlmodel import Session, col, delete, select

from cloud.db.models import (
    EventRow,
    IdentityRow,
    LocomotiveRow,
    ObservationRow,
    PositionRow,
    SnapshotRow,
    StationVisitRow,
    ThumbnailRow,
    VoteRow,
)
from cloud.fse import Event, EventKind, Loco, Observation, SeenExtent, TrackState
from cloud.history import PastInputs, moved_to
from cloud.identities import Vote
from shared.messages import PROD_FLOW

# A locomotive's position is written again once an end moved this far (or its station changed).
POSITION_STEP_M = 0.2
# A locomotive that did not change is rewritten this often (its last_seen, for a restart).
LAST_SEEN_REFRESH = timedelta(seconds=10)


@dataclass
class Update:
    """What one estimator update concluded, to be saved: the locomotives then, the events it
    produced, and the whole state when a snapshot is due."""

    at: datetime
    locos: list[Loco]
    events: list[Event]
    snapshot: list[TrackState] | None = None


def to_row(loco: Loco, flow: str = PROD_FLOW) -> LocomotiveRow:
    """The row of a flow's locomotive: its fields by name, where it last stood in two columns."""
    start, end = loco.settled
    return LocomotiveRow.model_validate(
        loco, update={"flow": flow, "present": True, "settled_start_m": start, "settled_end_m": end}
    )


def from_row(row: LocomotiveRow) -> Loco:
    """The locomotive a row keeps."""
    return Loco.model_validate(row, update={"settled": (row.settled_start_m, row.settled_end_m)})


class StateStore:
    """Writes what one flow's estimator concluded; reads it back at start."""

    def __init__(self, engine: Engine, flow: str = PROD_FLOW) -> None:
        self.engine = engine
        self.flow = flow
        self._written: dict[str, tuple[float, float, str | None]] = {}
        self._saved: dict[str, Loco] = {}

    def present(self) -> list[Loco]:
        """Locomotives in the facility when the service last stopped."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(LocomotiveRow).where(LocomotiveRow.present, LocomotiveRow.flow == self.flow)
            ).all()
        self._written = {r.loco_id: (r.start_m, r.end_m, r.station) for r in rows}
        locos = [from_row(r) for r in rows]
        self._saved = {loco.loco_id: loco for loco in locos}
        return locos

    def id_factory(self) -> Callable[[], str]:
        """New locomotive ids that continue after the highest one ever given, in any flow (ids are
        unique across flows, so one factory serves every flow's estimator)."""
        with Session(self.engine) as session:
            highest = session.exec(select(func.max(LocomotiveRow.loco_id))).one()
        start = int(highest[1:]) + 1 if highest else 1
        counter = itertools.count(start)
        return lambda: f"L{next(counter):05d}"

    def save(self, now: datetime, locos: list[Loco], events: list[Event]) -> None:
        """Save one update (see `save_updates`)."""
        self.save_updates([Update(now, locos, events)])

    def save_updates(self, updates: list[Update]) -> None:
        """Save updates in order, in one transaction: upsert the locomotives that changed, retire the
        departed ones, append events, moved positions and snapshots. A locomotive that only stood on
        is rewritten once per LAST_SEEN_REFRESH (its last_seen), not on every update: at 10 updates
        a second that was most of the write load. What was written is remembered only once
        committed, so a failed save is retried whole."""
        saved, written = dict(self._saved), dict(self._written)
        with Session(self.engine) as session:
            for update in updates:
                self._add(session, update, saved, written)
            session.commit()
        self._saved, self._written = saved, written

    def _add(
        self,
        session: Session,
        update: Update,
        saved: dict[str, Loco],
        written: dict[str, tuple[float, float, str | None]],
    ) -> None:
        now = update.at
        for loco in update.locos:
            before = saved.get(loco.loco_id)
            stood_on = before is not None and loco.last_seen - before.last_seen < LAST_SEEN_REFRESH
            if before is None or _changed(before, loco) or not stood_on:
                session.merge(to_row(loco, self.flow))
                saved[loco.loco_id] = loco
            last = written.get(loco.loco_id)
            # A new station is always a new position, however little the ends moved: the reports'
            # visits are read from the positions.
            if (
                last is None
                or last[2] != loco.station
                or max(abs(last[0] - loco.start_m), abs(last[1] - loco.end_m)) > POSITION_STEP_M
            ):
                session.add(
                    PositionRow(
                        loco_id=loco.loco_id,
                        flow=self.flow,
                        at=now,
                        track_id=loco.track_id,
                        start_m=loco.start_m,
                        end_m=loco.end_m,
                        station=loco.station,
                    )
                )
                written[loco.loco_id] = (loco.start_m, loco.end_m, loco.station)
        for event in update.events:
            session.add(
                EventRow(
                    flow=self.flow,
                    at=event.at,
                    kind=event.kind.value,
                    track_id=event.track_id,
                    loco_id=event.loco_id,
                    station=event.station,
                    camera_id=event.camera_id,
                    detail=event.detail[:300],
                )
            )
            if event.kind is EventKind.DEPARTED and event.loco_id:
                row = session.get(LocomotiveRow, event.loco_id)
                if row is not None:
                    row.present = False
                    session.add(row)
                written.pop(event.loco_id, None)
                saved.pop(event.loco_id, None)
        if update.snapshot is not None:
            session.add(SnapshotRow(flow=self.flow, at=now, state=_snapshot_json(update.snapshot)))

    def recent_observations(self, limit: int) -> list[tuple[str, str, int, UUID, Observation]]:
        """The last `limit` observations stored (any flow), oldest first: (flow, node, seq,
        observation id, observation)."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(ObservationRow).order_by(col(ObservationRow.id).desc()).limit(limit)
            ).all()
        return [
            (r.flow, r.node_id, r.seq, UUID(r.observation_id), stored_observation(r)) for r in reversed(rows)
        ]

    def identities(self) -> list[IdentityRow]:
        """Every settled identity (for the vote counts to resume after a restart)."""
        with Session(self.engine) as session:
            return list(session.exec(select(IdentityRow)).all())

    def counted_thumbnails(self, limit: int) -> list[UUID]:
        """The thumbnails whose recognitions were counted lately, in this flow, oldest first."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(VoteRow.thumbnail_id)
                .where(VoteRow.flow == self.flow)
                .order_by(col(VoteRow.id).desc())
                .limit(limit)
            ).all()
        return [UUID(t) for t in reversed(rows)]

    def save_vote(self, vote: Vote) -> bool:
        """Save a counted recognition with the locomotive's identity and tally after it, in one
        transaction; False (nothing written) when this flow counted the thumbnail already."""
        r = vote.recognition
        with Session(self.engine) as session:
            counted = session.exec(
                select(VoteRow.id).where(
                    VoteRow.flow == self.flow, VoteRow.thumbnail_id == str(r.thumbnail_id)
                )
            ).first()
            if counted is not None:
                return False
            session.add(
                VoteRow(
                    flow=self.flow,
                    thumbnail_id=str(r.thumbnail_id),
                    loco_id=vote.loco_id,
                    at=r.captured_at,
                    series=r.series,
                    series_confidence=r.series_confidence,
                    plate=r.plate,
                    plate_confidence=r.plate_confidence,
                )
            )
            identity = vote.identity
            session.merge(
                IdentityRow(
                    loco_id=vote.loco_id,
                    series=identity.series,
                    series_confidence=identity.series_confidence,
                    series_weight=vote.votes.weight("series"),
                    plate=identity.plate,
                    plate_confidence=identity.plate_confidence,
                    plate_weight=vote.votes.weight("plate"),
                    thumbnail_id=identity.thumbnail_id,
                    updated_at=r.captured_at,
                    tallies=vote.votes.to_json(),
                )
            )
            session.commit()
        return True

    def purge_thumbnails(self, before: datetime) -> int:
        """Delete thumbnails captured before `before`; returns how many."""
        with Session(self.engine) as session:
            result = session.exec(delete(ThumbnailRow).where(col(ThumbnailRow.captured_at) < before))
            session.commit()
            return int(result.rowcount or 0)

    def purge(self, before: datetime) -> int:
        """Delete observations, positions, snapshots, votes and kept station visits older than `before`;
        returns rows deleted."""
        deleted = 0
        with Session(self.engine) as session:
            for table, column in (
                (ObservationRow, col(ObservationRow.captured_at)),
                (PositionRow, col(PositionRow.at)),
                (SnapshotRow, col(SnapshotRow.at)),
                (VoteRow, col(VoteRow.at)),
                (StationVisitRow, col(StationVisitRow.left)),
            ):
                result = session.exec(delete(table).where(column < before))
                deleted += int(result.rowcount or 0)
            session.commit()
        return deleted

    def snapshot(self, now: datetime, state: list[TrackState]) -> None:
        """Keep the whole state as of now (an update that carries only the snapshot)."""
        self.save_updates([Update(now, [], [], snapshot=state)])

    def past(self, at: datetime, window: timedelta) -> PastInputs | None:
        """What is needed to recompute the flow's state at `at` (observations captured up to `window`
        before it: the estimator's max_age); None when nothing was recorded before it."""
        flow = self.flow
        with Session(self.engine) as session:
            snapshot = session.exec(
                select(SnapshotRow)
                .where(SnapshotRow.flow == flow, SnapshotRow.at <= at)
                .order_by(col(SnapshotRow.at).desc())
                .limit(1)
            ).first()
            since = snapshot.at if snapshot is not None else None
            locos = {
                loco.loco_id: loco
                for loco in (
                    Loco.model_validate(d) for t in (snapshot.state if snapshot else []) for d in t["locos"]
                )
            }
            arrived = select(LocomotiveRow).where(LocomotiveRow.flow == flow, LocomotiveRow.first_seen <= at)
            departed = select(EventRow.loco_id).where(
                EventRow.flow == flow, EventRow.kind == EventKind.DEPARTED.value, EventRow.at <= at
            )
            moves = (
                select(PositionRow)
                .where(PositionRow.flow == flow, PositionRow.at <= at)
                .order_by(col(PositionRow.at))
            )
            if since is not None:
                arrived = arrived.where(LocomotiveRow.first_seen > since)
                departed = departed.where(EventRow.at > since)
                moves = moves.where(PositionRow.at > since)
            for row in session.exec(arrived).all():
                locos.setdefault(row.loco_id, from_row(row))
            for loco_id in session.exec(departed).all():
                locos.pop(loco_id or "", None)
            positions: dict[str, list[tuple[float, float, str | None]]] = {}
            for position in session.exec(moves.where(col(PositionRow.loco_id).in_(list(locos)))).all():
                positions.setdefault(position.loco_id, []).append(
                    (position.start_m, position.end_m, position.station)
                )
            rows = session.exec(
                select(ObservationRow).where(
                    ObservationRow.flow == flow,
                    ObservationRow.captured_at > at - window,
                    ObservationRow.captured_at <= at,
                )
            ).all()
        if snapshot is None and not locos and not rows:
            return None
        return PastInputs(
            at=at,
            locos=[moved_to(loco, positions.get(loco.loco_id, [])) for loco in locos.values()],
            observations=[stored_observation(row) for row in rows],
        )


def stored_observation(row: ObservationRow) -> Observation:
    """A stored detection as the estimator takes it; an extent that is not finite numbers (stored
    before the contract refused them) is left out rather than break every recomputation."""
    extents = (SeenExtent(**extent) for extent in row.extents)
    return Observation(
        row.camera_id,
        row.captured_at,
        tuple(e for e in extents if math.isfinite(e.start_m) and math.isfinite(e.end_m)),
        online=row.camera_state == "online",
    )


def _changed(before: Loco, after: Loco) -> bool:
    """Whether anything but the time last seen and the confidence changed."""
    return before.model_copy(update={"last_seen": after.last_seen, "confidence": after.confidence}) != after


def _snapshot_json(state: list[TrackState]) -> list[dict[str, object]]:
    """The whole state as a snapshot keeps it (JSON: times as ISO text, pairs as lists)."""
    return [
        {
            "track_id": t.track_id,
            "unknown": [list(u) for u in t.unknown],
            "locos": [loco.model_dump(mode="json") for loco in t.locos],
        }
        for t in state
    ]
