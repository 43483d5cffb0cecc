"""Facility State Estimator: fuses the extents every camera reports into locomotives per track, each
with a stable identity, and emits what changed. Pure logic over plain data: no broker, no database.

Per track the estimator keeps a grid of cells, each *occupied*, *free* or *unknown*: a camera whose
latest observation is fresh vouches for its view (free, or occupied under a reported extent); a stale or
offline camera vouches for nothing, so its segment is unknown, never empty. Runs of occupied cells are
locomotives (the gangway gap of a two-section locomotive bridged). An end bordering a free cell is seen;
an end bordering unknown cells keeps what was known of it (its earlier position, or the locomotive's
known length), which is how a locomotive standing half outside the cameras' coverage keeps its extent.
Runs are matched to tracked locomotives by overlap (cloud.fse_match), so a locomotive keeps its id
while it stands for days and while it shunts between stations.

A run that matches no locomotive is not one yet: it becomes a locomotive (an id, its arrival and
station events) once it has been there without a break for `confirm_s` of data time, and one gone
sooner leaves no event at all. Views fused at one instant were captured up to a sampling period
apart, so a locomotive on the move can show twice for a moment, where a lagging camera last saw it and
where the others see it now; that second run is not a locomotive. An estimator's first update takes
every run at once: what its views show then was there before it started (a restart, or the single
update of a past state), for how long it cannot know.

Observations older than the camera's latest (an edge backlog after an outage) do not touch the live
state: they belong to history, which is rebuilt from stored observations when a past time is asked.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt
from pydantic import ConfigDict, Field

from cloud.fse_match import Pending, pair_runs
from cloud.locomotive import LocoKept
from shared.layout import Facility
from shared.seen import seen_stretches
from shared.strict import StrictModel

GRID_M = 0.1


class FseSettings(StrictModel):
    """The estimator's tunables; each flow runs its own (`flows.<name>.fse`), so a change is tried on
    live or recorded data beside prod before it becomes prod's."""

    max_age_s: float = Field(
        25.0,
        gt=10,
        le=600,
        description="A camera's observation vouches for its view this long; older, the view is unknown. "
        "An edge node skips inference while its picture is still and re-confirms every 10 s (capture "
        "reconfirm_s), so this must be well above that or still views flap between seen and unseen.",
    )
    bridge_m: float = Field(
        0.8, ge=0, le=10, description="Occupied runs closer than this are one locomotive (gangways)."
    )
    unseen_bridge_m: float = Field(
        3.0,
        ge=0,
        le=20,
        description="Occupied runs this close are one locomotive when no camera sees the gap between "
        "them (between two cameras' seen stretches, say): nobody saw it free.",
    )
    min_run_m: float = Field(2.0, gt=0, le=30, description="Shorter occupied runs are noise.")
    min_overlap_m: float = Field(
        0.5, gt=0, le=30, description="A run is a tracked locomotive when they overlap at least this much."
    )
    match_slack_m: float = Field(
        6.0,
        ge=0,
        le=50,
        description="How far a locomotive may move between two updates and still be matched "
        "(shunting is about 1.5 m/s).",
    )
    moved_m: float = Field(
        1.0, gt=0, le=50, description="A locomotive whose ends moved more than this is moving."
    )
    still_m: float = Field(
        0.3, ge=0, le=10, description="A locomotive whose ends move less than this per update is still."
    )
    station_margin_m: float = Field(
        0.5,
        ge=0,
        le=10,
        description="A locomotive keeps its station until another overlaps it by more than this: one "
        "standing astride two stations does not flip between them (and their events) with measurement "
        "noise.",
    )
    settle_s: float = Field(
        10.0, gt=0, le=600, description="A moving locomotive still this long is standing again."
    )
    # Cameras are sampled each at its own instants (2 frames/s by default, 1 in the demo), so the views
    # fused at one instant are up to a sampling period apart, plus the watermark: a moving locomotive
    # seen twice that way lasts at most 1.1 s at 1 frame/s. Twice that, and an arrival is reported 2 s
    # late, when it has come 2.4 m in at shunting speed (1.2 m/s).
    confirm_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="A run of occupied cells matching no locomotive becomes one (an id, its arrival and "
        "station events) once it has been there this long without a break; gone sooner, it leaves no "
        "event (a moving locomotive that cameras sampled at different instants shows twice for a "
        "moment). Must exceed the slowest camera's sampling period; 0 takes every run at once.",
    )

    @property
    def max_age(self) -> timedelta:
        """`max_age_s` as a duration."""
        return timedelta(seconds=self.max_age_s)

    @property
    def settle(self) -> timedelta:
        """`settle_s` as a duration."""
        return timedelta(seconds=self.settle_s)

    @property
    def confirm(self) -> timedelta:
        """`confirm_s` as a duration."""
        return timedelta(seconds=self.confirm_s)


class Cell(IntEnum):
    """What is known of a stretch of track."""

    UNCOVERED = 0  # no camera sees it: no view covers it, or only a view's unseen borders (shared.seen)
    UNKNOWN = 1  # cameras see it, but none has vouched for it lately
    FREE = 2
    OCCUPIED = 3


class EventKind(StrEnum):
    """What the estimator reports, and (the last two, stored by the ingest) an edge node's lifecycle."""

    ARRIVED = "arrived"
    DEPARTED = "departed"
    MOVED = "moved"
    STATION_OCCUPIED = "station_occupied"
    STATION_FREED = "station_freed"
    CAMERA_UNSEEN = "camera_unseen"
    CAMERA_SEEN = "camera_seen"
    IDENTIFIED = "identified"
    IDENTITY_CONFLICT = "identity_conflict"
    REIDENTIFIED = "reidentified"
    NODE_ONLINE = "node_online"
    NODE_OFFLINE = "node_offline"


@dataclass(frozen=True)
class SeenExtent:
    """One extent as a camera reported it."""

    start_m: float
    end_m: float
    start_beyond_view: bool
    end_beyond_view: bool
    confidence: float = 1.0


@dataclass(frozen=True)
class Observation:
    """A camera's report at one moment (from a Detection)."""

    camera_id: str
    at: datetime
    extents: tuple[SeenExtent, ...]
    online: bool = True


class Loco(LocoKept):
    """A tracked locomotive: the fields declared once in `cloud.locomotive.LocoBase` and `LocoKept`
    (which the table row and the API's model derive from too), and where it last stood. Immutable: an
    update makes a changed copy (`model_copy`)."""

    # SQLModel types model_config as its SQLModelConfig, which it does not export; a ConfigDict is what
    # the pydantic mypy plugin reads to refuse an assignment to a locomotive's field.
    model_config = ConfigDict(frozen=True)  # type: ignore[assignment]

    settled: tuple[float, float]  # where it last stood


@dataclass(frozen=True)
class Event:
    """A change worth telling operators."""

    at: datetime
    kind: EventKind
    track_id: str
    loco_id: str | None = None
    station: str | None = None
    camera_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class TrackState:
    """One track now: its locomotives and the stretches nobody can currently see."""

    track_id: str
    locos: tuple[Loco, ...]
    unknown: tuple[tuple[float, float], ...]


@dataclass
class _Track:
    track_id: str
    length_m: float
    cameras: dict[str, tuple[float, float]]
    covered: npt.NDArray[np.bool_]
    locos: dict[str, Loco] = field(default_factory=dict)
    pending: list[Pending] = field(default_factory=list)  # runs not yet confirmed as locomotives
    unknown: tuple[tuple[float, float], ...] = ()


def _new_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"L{next(counter):05d}"


class FacilityStateEstimator:
    """Live facility state from camera observations."""

    def __init__(
        self,
        facility: Facility,
        new_id: Callable[[], str] | None = None,
        settings: FseSettings | None = None,
        vouched: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        """`vouched`: the track metres each camera's observations vouch for, by camera id; by
        default where its LPE can place an end (its seen stretch, shared.seen), not all of its view:
        towards the view's borders the image shows no locomotive's side."""
        self.facility = facility
        self.settings = settings or FseSettings()
        self._new_id = new_id or _new_ids()
        # Observations arrive on the ingest thread while another thread fuses: one lock guards both.
        self._lock = threading.RLock()
        # Per camera: the observation in effect at the last update, and those captured after it,
        # waiting for an update at or after their capture time.
        self._current: dict[str, Observation] = {}
        self._waiting: dict[str, list[Observation]] = {}
        self._updated_at: datetime | None = None
        self._camera_seen: dict[str, bool] = {}
        self._tracks: dict[str, _Track] = {}
        for tid, track in facility.tracks.items():
            cells = int(np.ceil(track.length_m / GRID_M))
            covered = np.zeros(cells, dtype=bool)
            views = (
                dict(seen_stretches(facility, tid))
                if vouched is None
                else {cid: vouched[cid] for cid in facility.cameras_on_track(tid)}
            )
            for lo, hi in views.values():
                covered[self._cell(lo) : self._cell(hi)] = True
            self._tracks[tid] = _Track(tid, track.length_m, views, covered)

    @staticmethod
    def _cell(metres: float) -> int:
        return max(round(metres / GRID_M), 0)

    def observe(self, observation: Observation) -> bool:
        """Take a camera's observation; it counts from the first update at or after its capture time.
        False when it is older than one already taken (late data: history only), or captured further
        ahead of the last update than an observation stays valid (a camera clock running ahead: it
        would wait, unfused, and turn away every real observation after it)."""
        cid = observation.camera_id
        if cid not in self.facility.cameras:
            raise KeyError(f"unknown camera {cid!r}")
        with self._lock:
            if self._updated_at is not None and observation.at > self._updated_at + self.settings.max_age:
                return False
            waiting = self._waiting.setdefault(cid, [])
            latest = waiting[-1] if waiting else self._current.get(cid)
            if latest is not None and observation.at <= latest.at:
                return False
            waiting.append(observation)
            return True

    def restore_views(self, observations: list[Observation]) -> None:
        """Resume each camera's latest observation (after a restart), so views already seen are not
        unknown until the camera next reports; older ones than a camera's current are ignored."""
        with self._lock:
            for obs in sorted(observations, key=lambda o: o.at):
                if obs.camera_id in self.facility.cameras:
                    current = self._current.get(obs.camera_id)
                    if current is None or obs.at > current.at:
                        self._current[obs.camera_id] = obs

    def restore(self, locos: list[Loco]) -> None:
        """Resume from stored locomotives (after a restart); their ids go on."""
        with self._lock:
            for loco in locos:
                track = self._tracks.get(loco.track_id)
                if track is not None:
                    track.locos[loco.loco_id] = loco

    def update(self, now: datetime) -> list[Event]:
        """Fuse each camera's latest observation captured by `now` into the state as of `now`; returns
        the events. Observations captured after `now` wait for a later update, so the result depends
        on what was captured by then, not on when it arrived."""
        with self._lock:
            at_once = self._updated_at is None  # what the first update sees was there before
            self._updated_at = now
            for cid, waiting in self._waiting.items():
                due = bisect.bisect_right(waiting, now, key=lambda o: o.at)
                if due:
                    self._current[cid] = waiting[due - 1]
                    del waiting[:due]
            events = self._camera_events(now)
            for track in self._tracks.values():
                events.extend(self._update_track(track, now, at_once))
            return events

    def state(self) -> list[TrackState]:
        """The facility now, track by track."""
        with self._lock:
            return [
                TrackState(
                    t.track_id, tuple(sorted(t.locos.values(), key=lambda loco: loco.start_m)), t.unknown
                )
                for t in self._tracks.values()
            ]

    def locos(self) -> list[Loco]:
        """Every tracked locomotive."""
        with self._lock:
            return [loco for t in self._tracks.values() for loco in t.locos.values()]

    # ------------------------------------------------------------------------------------------

    def _fresh(self, camera_id: str, now: datetime) -> Observation | None:
        obs = self._current.get(camera_id)
        if obs is None or not obs.online or now - obs.at > self.settings.max_age:
            return None
        return obs

    def _camera_events(self, now: datetime) -> list[Event]:
        events = []
        for cid, cam in self.facility.cameras.items():
            seen = self._fresh(cid, now) is not None
            before = self._camera_seen.get(cid)
            if before is not None and before != seen:
                kind = EventKind.CAMERA_SEEN if seen else EventKind.CAMERA_UNSEEN
                detail = f"{cam.view.start_m:g}–{cam.view.end_m:g} m"
                events.append(Event(now, kind, cam.track, camera_id=cid, detail=detail))
            self._camera_seen[cid] = seen
        return events

    def _grid(self, track: _Track, now: datetime) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
        cells = np.where(track.covered, Cell.UNKNOWN, Cell.UNCOVERED).astype(np.int8)
        confidence = np.zeros(len(cells), np.float32)
        for cid, (lo, hi) in track.cameras.items():
            obs = self._fresh(cid, now)
            if obs is None:
                continue
            view = slice(self._cell(lo), self._cell(hi))
            cells[view] = np.maximum(cells[view], Cell.FREE)
            for ext in obs.extents:
                span = slice(self._cell(ext.start_m), self._cell(ext.end_m))
                cells[span] = Cell.OCCUPIED
                confidence[span] = np.maximum(confidence[span], ext.confidence)
        return cells, confidence

    def _runs(self, cells: npt.NDArray[np.int8]) -> list[tuple[int, int]]:
        occupied = np.concatenate([[False], cells == Cell.OCCUPIED, [False]])
        edges = np.flatnonzero(occupied[1:] != occupied[:-1])
        runs: list[tuple[int, int]] = []
        bridge = round(self.settings.bridge_m / GRID_M)
        unseen_bridge = round(self.settings.unseen_bridge_m / GRID_M)
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            gap = a - runs[-1][1] if runs else 0
            if runs and (
                gap <= bridge
                or (gap <= unseen_bridge and bool(np.all(cells[runs[-1][1] : a] == Cell.UNCOVERED)))
            ):
                runs[-1] = (runs[-1][0], int(b))
            else:
                runs.append((int(a), int(b)))
        return [r for r in runs if (r[1] - r[0]) * GRID_M >= self.settings.min_run_m]

    def _update_track(self, track: _Track, now: datetime, at_once: bool) -> list[Event]:
        cells, confidence = self._grid(track, now)
        runs = self._runs(cells)
        spans = [(a * GRID_M, b * GRID_M) for a, b in runs]
        min_overlap, slack = self.settings.min_overlap_m, self.settings.match_slack_m
        tracked = {lid: (loco.start_m, loco.end_m) for lid, loco in track.locos.items()}
        matched = {lid: runs[i] for lid, i in pair_runs(spans, tracked, min_overlap, slack).items()}
        taken = set(matched.values())
        unmatched_runs = [run for run in runs if run not in taken]
        pending = {k: (p.start_m, p.end_m) for k, p in enumerate(track.pending)}
        unmatched_spans = [(a * GRID_M, b * GRID_M) for a, b in unmatched_runs]
        carried_on = {i: k for k, i in pair_runs(unmatched_spans, pending, min_overlap, slack).items()}
        events: list[Event] = []
        before_stations = {lid: loco.station for lid, loco in track.locos.items()}
        for loco_id, loco in list(track.locos.items()):
            matched_run = matched.get(loco_id)
            if matched_run is not None:
                track.locos[loco_id], moved = self._follow(track, loco, matched_run, cells, confidence, now)
                if moved is not None:
                    events.append(moved)
            elif self._left(track, loco, cells):
                del track.locos[loco_id]
                events.append(Event(now, EventKind.DEPARTED, track.track_id, loco_id, loco.station))
        # A pending run not seen again is dropped without a word; one there long enough arrives.
        still_pending = []
        for i, run in enumerate(unmatched_runs):
            k = carried_on.get(i)
            first_seen = now if k is None else track.pending[k].first_seen
            if at_once or now - first_seen >= self.settings.confirm:
                loco = self._start(track, run, cells, confidence, first_seen, now)
                track.locos[loco.loco_id] = loco
                events.append(Event(now, EventKind.ARRIVED, track.track_id, loco.loco_id, loco.station))
            else:
                still_pending.append(Pending(*unmatched_spans[i], first_seen))
        track.pending = still_pending
        events.extend(self._station_events(track, before_stations, now))
        track.unknown = self._unknown_spans(cells)
        return events

    def _ends(
        self, track: _Track, run: tuple[int, int], cells: npt.NDArray[np.int8], previous: Loco | None
    ) -> tuple[float, float, bool, bool]:
        a, b = run
        start_seen = bool(a > 0 and cells[a - 1] == Cell.FREE)
        end_seen = bool(b < len(cells) and cells[b] == Cell.FREE)
        start, end = float(a * GRID_M), float(min(b * GRID_M, track.length_m))
        if previous is not None:
            length = previous.end_m - previous.start_m
            known_length = (previous.start_seen and previous.end_seen) or previous.settled[
                1
            ] - previous.settled[0] > 0
            if not start_seen:
                start = (
                    min(start, end - length) if (end_seen and known_length) else min(start, previous.start_m)
                )
            if not end_seen:
                end = max(end, start + length) if (start_seen and known_length) else max(end, previous.end_m)
        return start, end, start_seen, end_seen

    def _follow(
        self,
        track: _Track,
        loco: Loco,
        run: tuple[int, int],
        cells: npt.NDArray[np.int8],
        confidence: npt.NDArray[np.float32],
        now: datetime,
    ) -> tuple[Loco, Event | None]:
        start, end, start_seen, end_seen = self._ends(track, run, cells, loco)
        drift = max(abs(start - loco.settled[0]), abs(end - loco.settled[1]))
        step = max(abs(start - loco.start_m), abs(end - loco.end_m))
        settings = self.settings
        still_since = loco.still_since if step <= settings.still_m else now
        moving = loco.moving or drift > settings.moved_m
        event = None
        settled = loco.settled
        if moving and now - still_since >= settings.settle:
            moving = False
            if drift > settings.moved_m:
                station = self._station(track, start, end, loco.station)
                event = Event(
                    now,
                    EventKind.MOVED,
                    track.track_id,
                    loco.loco_id,
                    station,
                    detail=f"from {settled[0]:.1f}–{settled[1]:.1f} m to {start:.1f}–{end:.1f} m",
                )
            settled = (start, end)
        updated = loco.model_copy(
            update={
                "start_m": round(start, 2),
                "end_m": round(end, 2),
                "start_seen": start_seen,
                "end_seen": end_seen,
                "station": self._station(track, start, end, loco.station),
                "moving": moving,
                "last_seen": now,
                "confidence": float(confidence[run[0] : run[1]].mean()),
                "settled": settled,
                "still_since": still_since,
                "length_m": round(end - start, 2) if start_seen and end_seen else loco.length_m,
            }
        )
        return updated, event

    def _station(self, track: _Track, start: float, end: float, kept: str | None) -> str | None:
        margin = self.settings.station_margin_m
        return self.facility.station_at(track.track_id, start, end, kept, margin)

    def _start(
        self,
        track: _Track,
        run: tuple[int, int],
        cells: npt.NDArray[np.int8],
        confidence: npt.NDArray[np.float32],
        first_seen: datetime,
        now: datetime,
    ) -> Loco:
        start, end, start_seen, end_seen = self._ends(track, run, cells, None)
        return Loco(
            loco_id=self._new_id(),
            track_id=track.track_id,
            start_m=round(start, 2),
            end_m=round(end, 2),
            start_seen=start_seen,
            end_seen=end_seen,
            station=self._station(track, start, end, None),
            moving=False,
            first_seen=first_seen,
            last_seen=now,
            confidence=float(confidence[run[0] : run[1]].mean()),
            settled=(start, end),
            still_since=now,
            length_m=round(end - start, 2) if start_seen and end_seen else None,
        )

    def _left(self, track: _Track, loco: Loco, cells: npt.NDArray[np.int8]) -> bool:
        """An unmatched locomotive is gone if a camera sees its place free, or if what is left of it
        lies only where no camera looks (it drove out of coverage); while its place is merely
        unknown (a camera is down), it stays."""
        span = cells[self._cell(loco.start_m) : max(self._cell(loco.end_m), self._cell(loco.start_m) + 1)]
        return not np.any(span == Cell.UNKNOWN)

    def _station_events(self, track: _Track, before: dict[str, str | None], now: datetime) -> list[Event]:
        events = []
        was = {s for s in before.values() if s}
        now_occupied = {loco.station for loco in track.locos.values() if loco.station}
        for station in sorted(now_occupied - was):
            loco_id = next(lid for lid, loco in track.locos.items() if loco.station == station)
            events.append(Event(now, EventKind.STATION_OCCUPIED, track.track_id, loco_id, station))
        for station in sorted(was - now_occupied):
            freed_by = next((lid for lid, s in before.items() if s == station), None)
            events.append(Event(now, EventKind.STATION_FREED, track.track_id, freed_by, station))
        return events

    def _unknown_spans(self, cells: npt.NDArray[np.int8]) -> tuple[tuple[float, float], ...]:
        unknown = np.concatenate([[False], cells == Cell.UNKNOWN, [False]])
        edges = np.flatnonzero(unknown[1:] != unknown[:-1])
        return tuple(
            (round(float(a) * GRID_M, 2), round(float(b) * GRID_M, 2))
            for a, b in zip(edges[::2], edges[1::2], strict=True)
        )
