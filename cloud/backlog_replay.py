"""Station reports for the periods whose detections reached the cloud late, as an edge's backlog after a
link outage (pure logic).

The live estimator saw nothing of such a period while it went on (the cameras were unseen, so it kept
their locomotives where they were), and ignores the backlog when it comes (older than what it has): a
locomotive that left during the outage leaves, for the positions it recorded, when the cameras are heard
again. A report replays each such window instead: a fresh estimator, seeded with the locomotives the
database has at the window's start, fuses every stored observation of the track's cameras (the backlog
and, for a while after it, the live ones) by capture time, stepping as the live one does. At the
handover, `HANDOVER` after the window, the replay's occupant of each station is the live estimator's
occupant of it then, so a visit that began in the window and goes on after it keeps the live id (and its
series and number); the replay's positions and departures replace the live ones inside the window.
A locomotive that came and went within the window was never tracked live: it is reported under an id of
its own (`unrecorded-<track>-<n>`), with no series or number.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.fse import EventKind, FacilityStateEstimator, FseSettings, Loco, Observation
from cloud.reports import Stood
from shared.layout import Facility

# Historical detections of a track this far apart belong to two windows.
WINDOW_GAP = timedelta(minutes=1)
# How long after a window the replay goes on into the live data before handing over to the live
# estimator's ids: long enough for both to have caught up with what the cameras show.
HANDOVER = timedelta(minutes=2)
# Windows are replayed at the flow's update interval, but no finer than this (a report is asked for
# now, not kept up live).
MIN_REPLAY_STEP = timedelta(seconds=1)
# The id prefix of a locomotive the replay found and the live estimator never tracked.
UNRECORDED = "unrecorded-"


@dataclass(frozen=True)
class BacklogWindow:
    """A span of a track's time known only from backlog detections."""

    track_id: str
    start: datetime
    end: datetime

    @property
    def handover(self) -> datetime:
        """When the replay hands over to the live estimator's positions."""
        return self.end + HANDOVER


@dataclass(frozen=True)
class Replay:
    """A window replayed: the positions (from its start to the handover), departures, and each station's
    occupant at the handover."""

    window: BacklogWindow
    stood: list[Stood]
    departures: dict[str, datetime]
    occupants: dict[str, str]  # station -> locomotive id, at the handover


def backlog_windows(
    times: Iterable[tuple[str, datetime]], gap: timedelta = WINDOW_GAP
) -> list[BacklogWindow]:
    """The windows of (track, capture time) pairs of historical detections: per track, runs no more
    than `gap` apart."""
    windows = []
    for track_id, group in itertools.groupby(sorted(times), key=lambda t: t[0]):
        ats = [at for _, at in group]
        start = previous = ats[0]
        for at in ats[1:]:
            if at - previous > gap:
                windows.append(BacklogWindow(track_id, start, previous))
                start = at
            previous = at
        windows.append(BacklogWindow(track_id, start, previous))
    return windows


def replay(
    facility: Facility,
    window: BacklogWindow,
    seed: Sequence[Loco],
    observations: Sequence[Observation],
    step: timedelta,
    settings: FseSettings | None = None,
) -> Replay:
    """Replay `window`: an estimator seeded with `seed` (the locomotives at its start) fuses the
    observations of the track's cameras (those up to its estimator's max_age before the start prime the
    views) at every `step` from the start to the handover."""
    track = window.track_id
    unrecorded = itertools.count(1)
    estimator = FacilityStateEstimator(facility, lambda: f"{UNRECORDED}{track}-{next(unrecorded)}", settings)
    estimator.restore([loco for loco in seed if loco.track_id == track])
    cameras = set(facility.cameras_on_track(track))
    pending = sorted((o for o in observations if o.camera_id in cameras), key=lambda o: o.at)
    stood: list[Stood] = []
    departures: dict[str, datetime] = {}
    where: dict[str, str | None] = {}
    k = 0
    at = window.start
    while at <= window.handover:
        while k < len(pending) and pending[k].at <= at:
            estimator.observe(pending[k])
            k += 1
        for event in estimator.update(at):
            if event.kind is EventKind.DEPARTED and event.loco_id is not None:
                departures.setdefault(event.loco_id, event.at)
        for loco in estimator.locos():
            if loco.track_id == track and (loco.loco_id not in where or where[loco.loco_id] != loco.station):
                where[loco.loco_id] = loco.station
                stood.append(Stood(loco.loco_id, track, at, loco.station))
        at += step
    occupants = {
        loco.station: loco.loco_id for loco in estimator.locos() if loco.track_id == track and loco.station
    }
    return Replay(window, stood, departures, occupants)


def corrected(
    stood: Sequence[Stood], departures: dict[str, datetime], replays: Sequence[Replay]
) -> tuple[list[Stood], dict[str, datetime]]:
    """The live positions (in order of locomotive and time) and departures with each replayed window's
    in its place; returned in the same order.

    At the handover each station's occupant in the replay (R) and in the live positions (L) are the
    same locomotive. R keeps its id where it is one the live estimator gave (R was there before the
    window) or L is a locomotive the replay saw leave (the live estimator, blind meanwhile, took the
    newcomer for it): L's positions and departure after the handover become R's. Otherwise R is a
    newcomer of the window that the live estimator named L when it saw it again: R's positions become
    L's."""
    out = list(stood)
    gone = dict(departures)
    for done in replays:
        window = done.window
        live = _occupants_at(out, gone, window.track_id, window.handover)
        staying = set(done.occupants.values())
        left = {loco for loco in done.departures if loco not in staying}
        rename: dict[str, str] = {}  # replay id -> live id, inside the window
        alias: dict[str, str] = {}  # live id -> replay id, after the handover
        for station, replayed in done.occupants.items():
            known = live.get(station)
            if known is None or known == replayed:
                continue
            if not replayed.startswith(UNRECORDED) or known in left:
                alias[known] = replayed
            else:
                rename[replayed] = known
        out = [
            s for s in out if not (s.track_id == window.track_id and window.start < s.at <= window.handover)
        ]
        out = [
            Stood(alias[s.loco_id], s.track_id, s.at, s.station)
            if s.loco_id in alias and s.at > window.handover
            else s
            for s in out
        ]
        out += [Stood(rename.get(s.loco_id, s.loco_id), s.track_id, s.at, s.station) for s in done.stood]
        for loco in staying:  # a departure the live estimator recorded in the window did not happen
            if loco in gone and window.start < gone[loco] <= window.handover:
                del gone[loco]
        for known, replayed in alias.items():
            if known in gone and gone[known] > window.handover:
                gone[replayed] = gone.pop(known)
        for loco in left:
            gone[loco] = min(done.departures[loco], gone.get(loco, done.departures[loco]))
    out.sort(key=lambda s: (s.loco_id, s.at))
    return out, gone


def _occupants_at(
    stood: Sequence[Stood], departures: dict[str, datetime], track_id: str, at: datetime
) -> dict[str, str]:
    """Station -> the locomotive the positions have at it at `at`, on one track."""
    last: dict[str, Stood] = {}
    for s in stood:
        if s.track_id == track_id and s.at <= at:
            last[s.loco_id] = s
    return {
        s.station: loco
        for loco, s in last.items()
        if s.station is not None and (loco not in departures or departures[loco] > at)
    }
