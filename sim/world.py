"""The simulated depot over time: which locomotive stands where, which workers walk in which view,
which camera is faulty. Everything is planned up front from the seed, so `locos_at(t)` is a pure
lookup and separate processes (one per edge node) agree on the same world.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from shared.layout import Facility
from sim.fleet import Locomotive, make_fleet
from sim.scenario import FaultKind, Lighting, Scenario

# Planning granularity: decisions (arrive, shunt, leave) are taken at most this often per track.
DECISION_STEP_S = 20.0
# Clearance kept between locomotives and to a moving one's path.
CLEARANCE_M = 1.0
# A loco may overhang its station(s) by this share of its length: pits are shorter than 2-section locos.
OVERHANG_SHARE = 0.2
# Workers walk between the camera and the track, on the near side.
WORKER_OFFSET_M = (-2.9, -1.9)
WORKER_STAY_S = (30.0, 240.0)
FAULT_DURATION_S = (20.0, 300.0)
# The far-past time of a locomotive that stands at a station when the scenario starts.
ALWAYS = -1e12


@dataclass
class Visit:
    """One stay of a locomotive on a track: piecewise-linear tail position over time."""

    loco: Locomotive
    track_id: str
    reversed: bool
    times: list[float] = field(default_factory=list)
    tails: list[float] = field(default_factory=list)

    def add(self, t: float, tail_m: float) -> None:
        """Append a keyframe."""
        self.times.append(t)
        self.tails.append(tail_m)

    def tail_at(self, t: float) -> float:
        """Tail (lower end) position at time t."""
        return float(np.interp(t, self.times, self.tails))

    def moving_at(self, t: float) -> bool:
        """Whether the locomotive moves at time t."""
        i = int(np.searchsorted(self.times, t, side="right"))
        return 0 < i < len(self.times) and self.tails[i - 1] != self.tails[i]

    @property
    def t_in(self) -> float:
        """When the locomotive arrives on the track (its first keyframe)."""
        return self.times[0]

    @property
    def t_out(self) -> float:
        """When the locomotive leaves the track (its last keyframe)."""
        return self.times[-1]


@dataclass(frozen=True)
class LocoState:
    """Where a locomotive is at one moment; `start_m` < `end_m`, possibly off the track's ends."""

    loco: Locomotive
    track_id: str
    start_m: float
    end_m: float
    moving: bool
    reversed: bool


@dataclass(frozen=True)
class Worker:
    """A person in a camera's view."""

    track_m: float
    offset_m: float


class World:
    """Planned traffic, workers and faults of one scenario on one facility."""

    def __init__(self, facility: Facility, scenario: Scenario) -> None:
        self.facility = facility
        self.scenario = scenario
        self.horizon_s = scenario.horizon_h * 3600.0
        rng = np.random.default_rng(scenario.seed)
        self.fleet = make_fleet(rng, scenario.fleet_size, scenario.series_mix)
        self.visits = _plan_traffic(facility, scenario, self.fleet, rng)
        self._workers = {cid: _plan_workers(facility, cid, scenario, rng) for cid in sorted(facility.cameras)}
        self._faults = _plan_faults(facility, scenario, rng)

    def locos_at(self, t: float, track_id: str | None = None) -> list[LocoState]:
        """Locomotives on the tracks (any part within the track) at simulation second t."""
        found = []
        for v in self.visits:
            if not (v.t_in <= t <= v.t_out) or (track_id is not None and v.track_id != track_id):
                continue
            tail = v.tail_at(t)
            head = tail + v.loco.length_m
            if head > 0 and tail < self.facility.tracks[v.track_id].length_m:
                found.append(LocoState(v.loco, v.track_id, tail, head, v.moving_at(t), v.reversed))
        return sorted(found, key=lambda s: (s.track_id, s.start_m))

    def workers_at(self, camera_id: str, t: float) -> list[Worker]:
        """Workers standing or walking in a camera's view at time t."""
        plan = self._workers[camera_id]
        active = (plan[:, 0] <= t) & (t <= plan[:, 1])
        out = []
        for t0, t1, s0, s1, d in plan[active]:
            frac = (t - t0) / (t1 - t0)
            out.append(Worker(float(s0 + frac * (s1 - s0)), float(d)))
        return out

    def fault_at(self, camera_id: str, t: float) -> tuple[FaultKind, float] | None:
        """The fault a camera suffers at time t and when it began, if any."""
        for kind, start, end in self._faults.get(camera_id, []):
            if start <= t < end:
                return kind, start
        return None

    def daylight(self, t: float) -> float:
        """Daylight level 0 (night) … 1 (day) at time t."""
        lighting = self.scenario.conditions.lighting
        if lighting is not Lighting.AUTO:
            return 1.0 if lighting is Lighting.DAY else 0.0
        start = self.scenario.start
        hour = (start.hour + start.minute / 60 + start.second / 3600 + t / 3600.0) % 24
        return _smoothstep(6.5, 7.5, hour) * (1.0 - _smoothstep(18.5, 19.5, hour))


def _smoothstep(lo: float, hi: float, x: float) -> float:
    y = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return y * y * (3 - 2 * y)


@dataclass
class _Parked:
    visit: Visit
    tail: float
    until: float


def _plan_traffic(
    facility: Facility, scenario: Scenario, fleet: list[Locomotive], rng: np.random.Generator
) -> list[Visit]:
    """Arrivals, shunts and departures per track; one movement per track at a time."""
    visits: list[Visit] = []
    in_depot: set[str] = set()
    horizon = scenario.horizon_h * 3600.0
    tracks = {tid: _TrackPlanner(facility, tid, scenario) for tid in sorted(facility.tracks)}
    for planner in tracks.values():
        for span in planner.spans_for_initial_fill(rng):
            loco = _pick_loco(fleet, in_depot, rng, max_length=span[1] - span[0] + planner.overhang(span))
            if loco is None:
                continue
            tail = planner.parking_tail(span, loco.length_m)
            if not planner.clear(tail, tail + loco.length_m):
                continue
            visit = Visit(loco, planner.track_id, bool(rng.random() < 0.5))
            visit.add(ALWAYS, tail)
            planner.parked.append(_Parked(visit, tail, float(rng.uniform(0, planner.dwell_s(rng)))))
            in_depot.add(loco.plate)
            visits.append(visit)
    step = DECISION_STEP_S
    for t in np.arange(0.0, horizon, step):
        for planner in tracks.values():
            if t < planner.busy_until:
                continue
            arrived = planner.decide(float(t), rng, fleet, in_depot)
            if arrived is not None:
                visits.append(arrived)
    for planner in tracks.values():
        for parked in planner.parked:
            parked.visit.add(math.inf, parked.tail)
    return visits


def _pick_loco(
    fleet: list[Locomotive], in_depot: set[str], rng: np.random.Generator, max_length: float
) -> Locomotive | None:
    candidates = [loco for loco in fleet if loco.plate not in in_depot and loco.length_m <= max_length]
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


class _TrackPlanner:
    """Plans one track: parking spans are single stations or runs of adjacent ones."""

    def __init__(self, facility: Facility, track_id: str, scenario: Scenario) -> None:
        self.track_id = track_id
        self.scenario = scenario
        self.length = facility.tracks[track_id].length_m
        stations = list(facility.stations_on_track(track_id).values())
        self.singles = [(a.start_m, a.end_m) for a in stations]
        self.spans = self.singles + [(a.start_m, b.end_m) for a, b in itertools.pairwise(stations)]
        self.parked: list[_Parked] = []
        self.busy_until = 0.0

    def overhang(self, span: tuple[float, float]) -> float:
        return OVERHANG_SHARE * (span[1] - span[0])

    def dwell_s(self, rng: np.random.Generator) -> float:
        lo, hi = self.scenario.dwell_minutes
        return float(rng.uniform(lo, hi)) * 60.0

    def spans_for_initial_fill(self, rng: np.random.Generator) -> list[tuple[float, float]]:
        return [s for s in self.singles if rng.random() < self.scenario.initial_occupancy]

    def parking_tail(self, span: tuple[float, float], length: float) -> float:
        tail = (span[0] + span[1]) / 2 - length / 2
        return min(max(tail, 0.0), self.length - length)

    def clear(self, lo: float, hi: float, ignore: Visit | None = None) -> bool:
        """Whether [lo, hi] keeps clearance from every parked locomotive."""
        return all(
            p.visit is ignore
            or hi + CLEARANCE_M <= p.tail
            or lo >= p.tail + p.visit.loco.length_m + CLEARANCE_M
            for p in self.parked
        )

    def _move(self, visit: Visit, t: float, start: float, end: float) -> float:
        arrive = t + abs(end - start) / self.scenario.speed_mps
        visit.add(t, start)
        visit.add(arrive, end)
        self.busy_until = arrive + DECISION_STEP_S
        return arrive

    def decide(
        self, t: float, rng: np.random.Generator, fleet: list[Locomotive], in_depot: set[str]
    ) -> Visit | None:
        """Take at most one action at time t; returns a newly arrived visit."""
        due = [p for p in self.parked if p.until <= t]
        if due:
            parked = due[int(rng.integers(len(due)))]
            length = parked.visit.loco.length_m
            if rng.random() < self.scenario.shunt_probability:
                for span in rng.permutation(len(self.spans)):
                    target = self.parking_tail(self.spans[int(span)], length)
                    lo, hi = min(target, parked.tail), max(target, parked.tail) + length
                    fits = length <= self.spans[int(span)][1] - self.spans[int(span)][0] + self.overhang(
                        self.spans[int(span)]
                    )
                    if fits and abs(target - parked.tail) > 1.0 and self.clear(lo, hi, ignore=parked.visit):
                        arrive = self._move(parked.visit, t, parked.tail, target)
                        parked.tail, parked.until = target, arrive + self.dwell_s(rng)
                        return None
            exits = [(-length - 2.0, 0.0), (self.length + 2.0, self.length)]
            for out_tail, edge in exits if rng.random() < 0.5 else exits[::-1]:
                lo, hi = min(parked.tail, edge), max(parked.tail + length, edge)
                if self.clear(lo, hi, ignore=parked.visit):
                    self._move(parked.visit, t, parked.tail, out_tail)
                    self.parked.remove(parked)
                    in_depot.discard(parked.visit.loco.plate)
                    return None
        if rng.random() >= self.scenario.arrivals_per_track_hour * DECISION_STEP_S / 3600.0:
            return None
        for span_index in rng.permutation(len(self.spans)):
            span = self.spans[int(span_index)]
            loco = _pick_loco(fleet, in_depot, rng, max_length=span[1] - span[0] + self.overhang(span))
            if loco is None:
                continue
            target = self.parking_tail(span, loco.length_m)
            if not self.clear(0.0, target + loco.length_m):
                continue
            visit = Visit(loco, self.track_id, bool(rng.random() < 0.5))
            arrive = self._move(visit, t, -loco.length_m - 2.0, target)
            self.parked.append(_Parked(visit, target, arrive + self.dwell_s(rng)))
            in_depot.add(loco.plate)
            return visit
        return None


def _plan_workers(
    facility: Facility, camera_id: str, scenario: Scenario, rng: np.random.Generator
) -> np.ndarray:
    """Rows of (t0, t1, s0, s1, offset): a worker walking from s0 to s1 between t0 and t1."""
    density = scenario.conditions.workers_per_camera
    view = facility.cameras[camera_id].view
    mean_stay = sum(WORKER_STAY_S) / 2
    horizon = scenario.horizon_h * 3600.0
    count = int(rng.poisson(density * horizon / mean_stay)) if density > 0 else 0
    t0 = rng.uniform(0, horizon, count)
    t1 = t0 + rng.uniform(*WORKER_STAY_S, count)
    s0 = rng.uniform(view.start_m + 1, view.end_m - 1, count)
    s1 = np.clip(s0 + rng.normal(0, 3, count), view.start_m, view.end_m)
    d = rng.uniform(*WORKER_OFFSET_M, count)
    return np.stack([t0, t1, s0, s1, d], axis=1) if count else np.zeros((0, 5))


def _plan_faults(
    facility: Facility, scenario: Scenario, rng: np.random.Generator
) -> dict[str, list[tuple[FaultKind, float, float]]]:
    faults: dict[str, list[tuple[FaultKind, float, float]]] = {}
    for spec in scenario.faults:
        faults.setdefault(spec.camera, []).append((spec.kind, spec.start_s, spec.start_s + spec.duration_s))
    rate = scenario.random_faults_per_camera_hour
    if rate > 0:
        kinds = list(FaultKind)
        for cid in sorted(facility.cameras):
            for start in rng.uniform(
                0, scenario.horizon_h * 3600, int(rng.poisson(rate * scenario.horizon_h))
            ):
                kind = kinds[int(rng.integers(len(kinds)))]
                faults.setdefault(cid, []).append(
                    (kind, float(start), float(start + rng.uniform(*FAULT_DURATION_S)))
                )
    return {cid: sorted(items, key=lambda f: f[1]) for cid, items in faults.items()}
