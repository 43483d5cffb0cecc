"""The Facility State Estimator on simulated shunts, fed as the demo feeds it: every event is about a
locomotive of the simulator's ground truth, one id per locomotive, none for a moment's fragment.

Each camera is sampled once a (data) second, on the simulated sources' common half-second grid at a
phase of its own, while the world runs ten times as fast (the demo's `--speed 10`): the views fused
at one instant are up to half a second, 6 m of a shunt, apart, which shows a moving locomotive in two
places at once (where a lagging camera last saw it, and where the others see it now)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.fse import Event, EventKind, FacilityStateEstimator, FseSettings, Observation, SeenExtent
from shared.layout import Facility
from sim.scenario import Scenario
from sim.truth import visible_extents
from sim.world import LocoState, Visit, World

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SPEED = 10.0  # simulated seconds per data second, as in the demo
SAMPLE_S = 1.0  # each camera's sampling period (the demo's sample_fps)
SLOT_S = 0.5  # the simulated sources deliver 2 frames/s, all on one grid
UPDATE_S = 0.1
T0 = 600.0  # simulation second the stretch starts at
DATA_S = 360.0  # an hour of simulated traffic
# A locomotive counts as in view once a camera sees this much of it (the estimator drops runs < 2 m).
VISIBLE_M = 2.5
LOCO_EVENTS = {
    EventKind.ARRIVED,
    EventKind.DEPARTED,
    EventKind.MOVED,
    EventKind.STATION_OCCUPIED,
    EventKind.STATION_FREED,
}


@dataclass
class Run:
    """What the estimator reported over the stretch, and where it had each id after every update."""

    events: list[Event] = field(default_factory=list)
    extents: dict[str, list[tuple[float, str, float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # id: (data second, track, start, end)


def _sim_t(d: float) -> float:
    return T0 + d * SPEED


def _visible(facility: Facility, visit: Visit, t: float) -> float:
    """The most of the visit's locomotive one camera sees at simulation second t."""
    if not visit.t_in <= t <= visit.t_out:
        return 0.0
    tail = visit.tail_at(t)
    state = LocoState(visit.loco, visit.track_id, tail, tail + visit.loco.length_m, False, visit.reversed)
    return max(
        (
            e.end_m - e.start_m
            for cid in facility.cameras_on_track(visit.track_id)
            for e in visible_extents(facility, cid, [state])
        ),
        default=0.0,
    )


def _in_view(facility: Facility, world: World) -> dict[int, float]:
    """Per visit seen in the stretch (by index in world.visits): the data second it came into view."""
    found = {}
    for i, visit in enumerate(world.visits):
        if visit.t_in <= _sim_t(DATA_S) and visit.t_out >= T0:
            d = next(
                (
                    float(d)
                    for d in np.arange(0.0, DATA_S, UPDATE_S)
                    if _visible(facility, visit, _sim_t(float(d))) >= VISIBLE_M
                ),
                None,
            )
            if d is not None:
                found[i] = d
    return found


def _feed(facility: Facility, world: World, seed: int) -> Run:
    """The estimator, updated on the data clock, over the stretch's detections from perfect cameras."""
    rng = np.random.default_rng(seed)
    cameras = sorted(facility.cameras)
    # A capture worker samples every other frame of its source, from whichever it started on.
    phase = {cid: SLOT_S * int(rng.integers(2)) + float(rng.uniform(0, 0.05)) for cid in cameras}
    fse = FacilityStateEstimator(facility)
    run = Run()
    for k in range(int(DATA_S / UPDATE_S)):
        d = k * UPDATE_S
        for cid in cameras:
            captured = float(np.floor((d - phase[cid]) / SAMPLE_S) * SAMPLE_S + phase[cid])
            if captured >= 0 and d - UPDATE_S < captured <= d + 1e-9:
                extents = tuple(
                    SeenExtent(e.start_m, e.end_m, e.start_beyond_view, e.end_beyond_view, 0.95)
                    for e in visible_extents(facility, cid, world.locos_at(_sim_t(captured)))
                )
                fse.observe(Observation(cid, START + timedelta(seconds=captured), extents))
        run.events += fse.update(START + timedelta(seconds=d))
        for loco in fse.locos():
            run.extents[loco.loco_id].append((d, loco.track_id, loco.start_m, loco.end_m))
    return run


def _visit_of(world: World, run: Run, loco_id: str, seen: dict[int, float]) -> int | None:
    """The visit an id overlapped most over its life, each visit widened by the views' lag."""
    overlap: dict[int, float] = defaultdict(float)
    for d, track_id, start, end in run.extents[loco_id]:
        for i in seen:
            visit = world.visits[i]
            if visit.track_id == track_id:
                tails = [visit.tail_at(_sim_t(d - lag)) for lag in (0.0, SAMPLE_S + UPDATE_S)]
                lo, hi = min(tails), max(tails) + visit.loco.length_m
                overlap[i] += max(min(hi, end) - max(lo, start), 0.0)
    best = max(overlap, key=lambda i: overlap[i], default=None)
    return best if best is not None and overlap[best] > 0 else None


def _shunts(facility: Facility, world: World) -> int:
    """Moves within a track (not in from the gate nor out to it) during the stretch."""
    return sum(
        1
        for v in world.visits
        for (ta, a), (tb, b) in zip(
            zip(v.times, v.tails, strict=True), zip(v.times[1:], v.tails[1:], strict=True), strict=False
        )
        if a != b
        and ta >= T0
        and tb <= _sim_t(DATA_S)
        and min(a, b) > -v.loco.length_m
        and max(a, b) < facility.tracks[v.track_id].length_m
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_shunts_at_demo_speed_give_events_of_real_locomotives_only(facility: Facility, seed: int) -> None:
    scenario = Scenario(
        seed=seed, horizon_h=3, shunt_probability=0.7, arrivals_per_track_hour=3, dwell_minutes=(3, 12)
    )
    world = World(facility, scenario)
    assert _shunts(facility, world) >= 5
    seen = _in_view(facility, world)
    run = _feed(facility, world, seed)
    events = [e for e in run.events if e.kind in LOCO_EVENTS]

    # Every id an event names is a locomotive of the truth, and no locomotive has two.
    found = {e.loco_id: _visit_of(world, run, e.loco_id or "", seen) for e in events}
    assert None not in found.values(), [loco_id for loco_id, v in found.items() if v is None]
    visit_of = {loco_id: v for loco_id, v in found.items() if loco_id is not None and v is not None}
    ids_of: dict[int, list[str]] = defaultdict(list)
    for loco_id, index in visit_of.items():
        ids_of[index].append(loco_id)
    doubles = {world.visits[v].loco.plate: ids for v, ids in ids_of.items() if len(ids) > 1}
    assert not doubles, f"locomotives with several ids: {doubles}"
    # Each locomotive in view long enough before the end has arrived.
    confirm = FseSettings().confirm
    settled_by_end = {i for i, d in seen.items() if d <= DATA_S - (confirm.total_seconds() + SAMPLE_S + 0.2)}
    assert settled_by_end <= set(ids_of), [world.visits[i].loco.plate for i in settled_by_end - set(ids_of)]

    arrived: dict[str, datetime] = {}
    departed: dict[str, datetime] = {}
    for e in events:
        assert e.loco_id is not None
        visit = world.visits[visit_of[e.loco_id]]
        if e.kind is EventKind.ARRIVED:
            assert e.loco_id not in arrived, f"{e.loco_id} arrived twice"
            arrived[e.loco_id] = e.at
            # Once in view for the confirmation time, at most a sampling period more.
            late = e.at - (START + timedelta(seconds=seen[visit_of[e.loco_id]]))
            tolerance = timedelta(seconds=UPDATE_S)
            assert confirm - tolerance <= late <= confirm + timedelta(seconds=SAMPLE_S) + tolerance, e
        elif e.kind is EventKind.STATION_FREED and departed.get(e.loco_id) == e.at:
            pass  # the station it departed from, in the same update
        else:
            assert e.loco_id in arrived and e.loco_id not in departed, f"{e.kind} of {e.loco_id} not there"
        if e.kind is EventKind.DEPARTED:
            t = _sim_t((e.at - START).total_seconds())
            assert _visible(facility, visit, t) < VISIBLE_M, f"{e.loco_id} departed while in view"
            departed[e.loco_id] = e.at

    # A station is occupied and freed in turn, never freed unoccupied.
    occupied: dict[str, bool] = {}
    for e in events:
        if e.kind in (EventKind.STATION_OCCUPIED, EventKind.STATION_FREED):
            assert e.station is not None
            assert occupied.get(e.station, False) != (e.kind is EventKind.STATION_OCCUPIED), e
            occupied[e.station] = e.kind is EventKind.STATION_OCCUPIED
