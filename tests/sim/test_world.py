"""The simulated world: deterministic by seed, physically consistent traffic."""

from __future__ import annotations

import itertools

import numpy as np

from shared.layout import Facility
from sim.scenario import Conditions, FaultKind, FaultSpec, Lighting, Scenario
from sim.world import CLEARANCE_M, Visit, World

HOURS = 24


def _timeline(world: World, step_s: float = 300.0) -> list[list[tuple[str, str, float, float]]]:
    return [
        [(s.track_id, s.loco.plate, round(s.start_m, 6), round(s.end_m, 6)) for s in world.locos_at(t)]
        for t in np.arange(0, HOURS * 3600, step_s)
    ]


def test_same_seed_plays_the_same_day(facility: Facility) -> None:
    a = World(facility, Scenario(seed=5, horizon_h=HOURS))
    b = World(facility, Scenario(seed=5, horizon_h=HOURS))
    assert _timeline(a) == _timeline(b)
    assert a.workers_at("T1-C1", 1234.0) == b.workers_at("T1-C1", 1234.0)


def test_another_seed_plays_another_day(facility: Facility) -> None:
    a = World(facility, Scenario(seed=5, horizon_h=HOURS))
    b = World(facility, Scenario(seed=6, horizon_h=HOURS))
    assert _timeline(a) != _timeline(b)


def test_locomotives_never_overlap_on_a_track(facility: Facility) -> None:
    world = World(facility, Scenario(seed=11, horizon_h=HOURS))
    for t in np.arange(0, HOURS * 3600, 30.0):
        for tid in facility.tracks:
            locos = world.locos_at(t, tid)
            for a, b in itertools.pairwise(locos):
                # Movements keep clearance from parked locomotives; allow rounding of interpolation.
                assert b.start_m - a.end_m >= CLEARANCE_M - 1e-6, (t, tid, a.loco.plate, b.loco.plate)


def test_traffic_arrives_parks_shunts_and_leaves(facility: Facility) -> None:
    world = World(facility, Scenario(seed=2, horizon_h=HOURS))
    plates_per_track: dict[str, set[str]] = {tid: set() for tid in facility.tracks}
    moving_seen = parked_at_station = 0
    for t in np.arange(0, HOURS * 3600, 60.0):
        for state in world.locos_at(t):
            plates_per_track[state.track_id].add(state.loco.plate)
            moving_seen += state.moving
            parked_at_station += (not state.moving) and facility.station_at(
                state.track_id, state.start_m, state.end_m
            ) is not None
    assert all(len(plates) >= 3 for plates in plates_per_track.values()), plates_per_track
    assert moving_seen > 0 and parked_at_station > moving_seen

    def inside(visit: Visit, x: float) -> bool:
        return x >= 0 and x + visit.loco.length_m <= facility.tracks[visit.track_id].length_m

    shunts = [
        (v.loco.plate, a, b)
        for v in world.visits
        for a, b in zip(v.tails, v.tails[1:], strict=False)
        if a != b and inside(v, a) and inside(v, b)
    ]
    assert shunts, "no locomotive ever shunted between stations"


def test_moves_happen_at_shunting_speed(facility: Facility) -> None:
    scenario = Scenario(seed=3, horizon_h=HOURS, speed_mps=1.5)
    world = World(facility, scenario)
    moves = 0
    for visit in world.visits:
        keys = list(zip(visit.times, visit.tails, strict=True))
        for (t0, x0), (t1, x1) in itertools.pairwise(keys):
            if x0 != x1:
                moves += 1
                assert np.isclose(abs(x1 - x0) / (t1 - t0), 1.5)
    assert moves > 10


def test_workers_stay_in_their_cameras_view(facility: Facility) -> None:
    world = World(facility, Scenario(seed=4, horizon_h=2, conditions=Conditions(workers_per_camera=2.0)))
    view = facility.cameras["T2-C2"].view
    seen = [w for t in np.arange(0, 7200, 60.0) for w in world.workers_at("T2-C2", t)]
    assert seen
    assert all(view.start_m <= w.track_m <= view.end_m and -3 < w.offset_m < -1.8 for w in seen)


def test_daylight_follows_the_clock_unless_forced(facility: Facility) -> None:
    world = World(facility, Scenario(horizon_h=1))  # starts 06:00
    assert world.daylight(0) == 0.0
    assert world.daylight(6 * 3600) == 1.0  # noon
    assert world.daylight(16 * 3600) == 0.0  # 22:00
    night = World(facility, Scenario(horizon_h=1, conditions=Conditions(lighting=Lighting.NIGHT)))
    assert night.daylight(6 * 3600) == 0.0


def test_scheduled_faults_are_reported_in_their_window(facility: Facility) -> None:
    spec = FaultSpec(camera="T1-C1", kind=FaultKind.BLACK, start_s=100, duration_s=50)
    world = World(facility, Scenario(horizon_h=1, faults=[spec]))
    assert world.fault_at("T1-C1", 99) is None
    assert world.fault_at("T1-C1", 120) == (FaultKind.BLACK, 100)
    assert world.fault_at("T1-C1", 150) is None
    assert world.fault_at("T1-C2", 120) is None
