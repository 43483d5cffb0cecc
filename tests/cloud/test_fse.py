"""The Facility State Estimator, fed with detections derived from the simulator's ground truth."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud.fse import Event, EventKind, FacilityStateEstimator, FseSettings, Loco, Observation, SeenExtent
from shared.layout import Facility
from shared.seen import seen_stretches
from sim.scenario import Scenario
from sim.truth import visible_extents
from sim.world import LocoState, World

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
STEP_S = 5.0
NOISE_M = 0.05
# Truth locomotives shorter than this inside the cameras' views cannot be seen as locomotives.
VISIBLE_M = 2.5


def observations(
    facility: Facility,
    locos: list[LocoState],
    at: datetime,
    rng: np.random.Generator,
    offline: Iterable[str] = (),
) -> list[Observation]:
    down = set(offline)
    out = []
    for cid in facility.cameras:
        extents = tuple(
            SeenExtent(
                e.start_m if e.start_beyond_view else e.start_m + rng.normal(0, NOISE_M),
                e.end_m if e.end_beyond_view else e.end_m + rng.normal(0, NOISE_M),
                e.start_beyond_view,
                e.end_beyond_view,
                0.95,
            )
            for e in visible_extents(facility, cid, locos)
        )
        out.append(Observation(cid, at, extents if cid not in down else (), online=cid not in down))
    return out


def visible_truth(facility: Facility, locos: list[LocoState]) -> list[LocoState]:
    """Locomotives a camera sees at least VISIBLE_M of."""
    seen = []
    for state in locos:
        lengths = [
            e.end_m - e.start_m
            for cid in facility.cameras_on_track(state.track_id)
            for e in visible_extents(facility, cid, [state])
        ]
        if lengths and max(lengths) >= VISIBLE_M:
            seen.append(state)
    return seen


def match(truth: LocoState, estimated: list[Loco]) -> Loco | None:
    best, overlap = None, 0.0
    for loco in estimated:
        if loco.track_id == truth.track_id:
            o = min(truth.end_m, loco.end_m) - max(truth.start_m, loco.start_m)
            if o > overlap:
                best, overlap = loco, o
    return best


def run(facility: Facility, world: World, hours: float, dropouts: bool) -> dict[str, float]:
    fse = FacilityStateEstimator(facility)
    rng = np.random.default_rng(3)
    cameras = sorted(facility.cameras)
    steps = int(hours * 3600 / STEP_S)
    counts_ok = 0
    ids: dict[str, str] = {}
    visible_before: set[str] = set()
    switches = 0
    down: dict[str, int] = {}
    end_errors = []
    for k in range(steps):
        t = k * STEP_S
        at = START + timedelta(seconds=t)
        if dropouts and k % 120 == 0:  # every 10 minutes one camera drops out for a minute
            down = {cameras[int(rng.integers(len(cameras)))]: k + 12}
        down = {cid: until for cid, until in down.items() if until > k}
        locos = world.locos_at(t)
        for obs in observations(facility, locos, at, rng, offline=down):
            fse.observe(obs)
        fse.update(at)
        estimated = fse.locos()
        truth = visible_truth(facility, locos)
        counts_ok += len(truth) == len(estimated)
        for state in truth:
            plate = state.loco.plate
            # A plate that was out of sight comes back on a new visit: a new id is right then
            # (recognising the locomotive itself is the plate recogniser's job).
            if plate not in visible_before:
                ids.pop(plate, None)
            loco = match(state, estimated)
            if loco is None:
                continue  # not tracked (yet: one coming into view is a locomotive after confirm_s)
            if plate in ids and ids[plate] != loco.loco_id:
                switches += 1
            ids[plate] = loco.loco_id
            for true_end, est_end, seen in (
                (state.start_m, loco.start_m, loco.start_seen),
                (state.end_m, loco.end_m, loco.end_seen),
            ):
                if seen:
                    end_errors.append(abs(true_end - est_end))
        visible_before = {state.loco.plate for state in truth}
    moves = sum(
        1
        for v in world.visits
        for a, b in zip(v.tails, v.tails[1:], strict=False)
        if a != b and v.times[0] < hours * 3600
    )
    return {
        "count_exact": counts_ok / steps,
        "switches_per_100_moves": 100 * switches / max(moves, 1),
        "moves": moves,
        "end_error_p95": float(np.percentile(end_errors, 95)),
    }


@pytest.mark.parametrize("dropouts", [False, True], ids=["all cameras", "camera dropouts"])
def test_a_simulated_day_keeps_count_and_identity(facility: Facility, dropouts: bool) -> None:
    world = World(facility, Scenario(seed=12, horizon_h=24))
    result = run(facility, world, hours=24, dropouts=dropouts)
    assert result["moves"] >= 50, result
    assert result["count_exact"] >= 0.99, result
    assert result["switches_per_100_moves"] <= 1.0, result
    assert result["end_error_p95"] <= 0.3, result


def _standing(facility: Facility, world: World, min_cameras: int) -> tuple[float, LocoState]:
    for t in np.arange(600, world.horizon_s, 300.0):
        for state in world.locos_at(t):
            cams = [
                c for c in facility.cameras_on_track(state.track_id) if visible_extents(facility, c, [state])
            ]
            if not state.moving and len(cams) >= min_cameras and state.start_m > 1.5 and state.end_m < 51:
                return float(t), state
    raise AssertionError("no standing locomotive in view")


def _feed(
    fse: FacilityStateEstimator,
    facility: Facility,
    world: World,
    t0: float,
    seconds: float,
    offline: Iterable[str] = (),
) -> list:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    events = []
    for t in np.arange(t0, t0 + seconds, STEP_S):
        at = START + timedelta(seconds=float(t))
        for obs in observations(facility, world.locos_at(float(t)), at, rng, offline):
            fse.observe(obs)
        events += fse.update(at)
    return events


def test_a_locomotive_across_three_cameras_is_one_with_both_ends(facility: Facility) -> None:
    world = World(facility, Scenario(seed=12, horizon_h=48))
    t, state = _standing(facility, world, min_cameras=3)
    fse = FacilityStateEstimator(facility)
    _feed(fse, facility, world, t, 30)
    [loco] = [loco for loco in fse.locos() if loco.track_id == state.track_id and match(state, [loco])]
    assert loco.start_seen and loco.end_seen
    assert loco.start_m == pytest.approx(state.start_m, abs=0.2)
    assert loco.end_m == pytest.approx(state.end_m, abs=0.2)
    assert loco.station == facility.station_at(state.track_id, state.start_m, state.end_m)


def test_a_camera_loss_makes_its_segment_unknown_and_keeps_the_locomotive(facility: Facility) -> None:
    world = World(facility, Scenario(seed=12, horizon_h=12))
    t, state = _standing(facility, world, min_cameras=2)
    cams = [c for c in facility.cameras_on_track(state.track_id) if visible_extents(facility, c, [state])]
    fse = FacilityStateEstimator(facility)
    _feed(fse, facility, world, t, 30)
    before = match(state, fse.locos())
    assert before is not None
    events = _feed(fse, facility, world, t + 30, 60, offline=cams)
    during = match(state, fse.locos())
    track = next(ts for ts in fse.state() if ts.track_id == state.track_id)
    assert during is not None and during.loco_id == before.loco_id
    assert (during.start_m, during.end_m) == pytest.approx((before.start_m, before.end_m), abs=0.2)
    # What the camera vouched for (where it sees a locomotive's side) is unknown while it is down.
    seen_lo, seen_hi = seen_stretches(facility, state.track_id)[cams[0]]
    assert any(lo <= seen_lo + 0.5 and hi >= seen_hi - 0.5 for lo, hi in track.unknown)
    kinds = [e.kind for e in events]
    assert EventKind.CAMERA_UNSEEN in kinds
    assert EventKind.DEPARTED not in kinds and EventKind.ARRIVED not in kinds
    events = _feed(fse, facility, world, t + 90, 30)
    assert EventKind.CAMERA_SEEN in [e.kind for e in events]
    after = match(state, fse.locos())
    assert after is not None and after.loco_id == before.loco_id


def test_a_shunt_keeps_the_identity_and_reports_the_move(facility: Facility) -> None:
    world = World(facility, Scenario(seed=12, horizon_h=24, shunt_probability=1.0))
    track_len = {tid: tr.length_m for tid, tr in facility.tracks.items()}
    shunt = next(
        (v, t0, t1)
        for v in world.visits
        for (t0, a), (t1, b) in zip(
            zip(v.times, v.tails, strict=True), zip(v.times[1:], v.tails[1:], strict=True), strict=False
        )
        if a != b
        and t0 > 120
        and a > 2
        and b > 2
        and max(a, b) + v.loco.length_m < min(51, track_len[v.track_id])
    )
    visit, t0, t1 = shunt
    fse = FacilityStateEstimator(facility)
    events = _feed(fse, facility, world, t0 - 60, (t1 - t0) + 120)
    state_before = next(s for s in world.locos_at(t0 - 30) if s.loco.plate == visit.loco.plate)
    state_after = next(s for s in world.locos_at(t1 + 55) if s.loco.plate == visit.loco.plate)
    ids = {e.loco_id for e in events if e.kind is EventKind.ARRIVED and e.track_id == visit.track_id}
    fse_after = match(state_after, fse.locos())
    assert fse_after is not None
    first_id = next(
        e.loco_id
        for e in events
        if e.kind is EventKind.ARRIVED
        and e.station == facility.station_at(visit.track_id, state_before.start_m, state_before.end_m)
    )
    assert fse_after.loco_id == first_id
    assert fse_after.loco_id in ids
    moved = [e for e in events if e.kind is EventKind.MOVED and e.loco_id == fse_after.loco_id]
    assert len(moved) == 1
    assert moved[0].station == facility.station_at(visit.track_id, state_after.start_m, state_after.end_m)


def test_late_observations_do_not_touch_the_live_state(facility: Facility) -> None:
    fse = FacilityStateEstimator(facility)
    now = START + timedelta(hours=1)
    assert fse.observe(Observation("T1-C2", now, (SeenExtent(14.0, 20.0, False, False),)))
    fse.update(now)
    [loco] = fse.locos()
    late = Observation("T1-C2", now - timedelta(minutes=5), (SeenExtent(20.0, 25.0, False, False),))
    assert not fse.observe(late)
    fse.update(now + timedelta(seconds=1))
    assert [(lo.start_m, lo.end_m) for lo in fse.locos()] == [(loco.start_m, loco.end_m)]


def test_a_locomotive_driving_out_of_coverage_departs(facility: Facility) -> None:
    fse = FacilityStateEstimator(facility)
    at = START
    events = []
    view = facility.cameras["T2-C4"].view
    for k, start in enumerate(np.arange(30.0, 75.0, 1.5)):
        at = START + timedelta(seconds=k)
        end = start + 17.0
        for cid in ("T2-C3", "T2-C4"):
            v = facility.cameras[cid].view
            lo, hi = max(start, v.start_m), min(end, v.end_m)
            extents = (SeenExtent(lo, hi, start < v.start_m, end > v.end_m),) if hi - lo > 0.5 else ()
            fse.observe(Observation(cid, at, extents))
        for cid in ("T2-C1", "T2-C2"):
            fse.observe(Observation(cid, at, ()))
        events += fse.update(at)
    assert view.end_m < 60
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.ARRIVED) == 1
    assert kinds.count(EventKind.DEPARTED) == 1
    assert not [lo for lo in fse.locos() if lo.track_id == "T2"]


def test_an_update_fuses_what_was_captured_by_its_instant_only(facility: Facility) -> None:
    fse = FacilityStateEstimator(facility)
    cam = facility.cameras["T1-C2"]
    loco = (SeenExtent(cam.view.start_m, cam.view.start_m + 8.0, True, False, 0.9),)
    assert fse.observe(Observation("T1-C2", START + timedelta(seconds=1), loco))
    fse.update(START)  # captured after this instant: it waits
    assert not fse.locos()
    fse.update(START + timedelta(seconds=1))
    fse.update(START + timedelta(seconds=1) + fse.settings.confirm)
    assert len(fse.locos()) == 1
    # A camera whose clock runs far ahead is turned away instead of blocking its real observations.
    assert not fse.observe(Observation("T1-C3", START + timedelta(minutes=10), ()))
    assert fse.observe(Observation("T1-C3", START + timedelta(seconds=2), ()))


def _report(fse: FacilityStateEstimator, at_s: float, views: dict[str, list[tuple[float, float]]]) -> None:
    """Each camera's view at `at_s`: extents (start, end), an end at the view's edge beyond it."""
    for cid, extents in views.items():
        view = fse.facility.cameras[cid].view
        seen = tuple(SeenExtent(a, b, a <= view.start_m, b >= view.end_m, 0.95) for a, b in extents)
        assert fse.observe(Observation(cid, START + timedelta(seconds=at_s), seen))


def _updates(fse: FacilityStateEstimator, from_s: float, to_s: float) -> list[Event]:
    """Updates every 0.1 s of data time from `from_s` up to and including `to_s`."""
    events = []
    for k in range(round(from_s * 10), round(to_s * 10) + 1):
        events += fse.update(START + timedelta(seconds=k / 10))
    return events


T4 = ("T4-C1", "T4-C2", "T4-C3", "T4-C4")


def test_a_run_gone_before_the_confirmation_time_is_no_locomotive(facility: Facility) -> None:
    """A locomotive driving in at the demo's pace (12 m/s): its head has passed into T4-C2's view,
    which shows it, while T4-C1's view, half a second older, still has the head short of T4-C2's;
    for that half second the head is a run of its own."""
    fse = FacilityStateEstimator(facility)
    _report(fse, 0.0, {cid: [] for cid in T4})
    _updates(fse, 0.0, 3.0)
    _report(fse, 3.5, {"T4-C1": [(1.4, 10.2)]})
    events = _updates(fse, 3.1, 4.0)
    _report(fse, 4.0, {"T4-C2": [(13.4, 16.5)], "T4-C3": [], "T4-C4": []})
    events += _updates(fse, 4.1, 4.5)
    assert not fse.locos()  # both runs wait to be confirmed
    _report(fse, 4.5, {"T4-C1": [(4.9, 15.1)]})
    events += _updates(fse, 4.6, 5.5)
    [arrived] = [e for e in events if e.kind is EventKind.ARRIVED]
    assert arrived.at == START + timedelta(seconds=3.5) + fse.settings.confirm
    assert [e.kind for e in events] == [EventKind.ARRIVED, EventKind.STATION_OCCUPIED]
    [loco] = fse.locos()
    assert loco.loco_id == arrived.loco_id and (loco.start_m, loco.end_m) == (4.9, 16.5)
    assert loco.first_seen == START + timedelta(seconds=3.5)


def test_a_run_there_for_the_confirmation_time_arrives_then(facility: Facility) -> None:
    fse = FacilityStateEstimator(facility)
    _report(fse, 0.0, {"T1-C2": [(14.0, 22.0)], "T1-C3": []})
    _updates(fse, 0.0, 0.0)  # the first update takes what it sees at once: it was there before
    [standing] = fse.locos()
    _report(fse, 1.0, {"T1-C3": [(30.0, 36.0)]})
    events = _updates(fse, 0.1, 2.9)
    assert not events  # seen, but not yet a locomotive
    assert [lo.loco_id for lo in fse.locos()] == [standing.loco_id]
    events = _updates(fse, 3.0, 3.0)
    [newcomer] = [lo for lo in fse.locos() if lo.loco_id != standing.loco_id]
    arrived_at = START + timedelta(seconds=3)
    assert events == [
        Event(arrived_at, EventKind.ARRIVED, "T1", newcomer.loco_id, "T1-B"),
        Event(arrived_at, EventKind.STATION_OCCUPIED, "T1", newcomer.loco_id, "T1-B"),
    ]
    assert newcomer.first_seen == START + timedelta(seconds=1) and newcomer.last_seen == events[0].at
    _report(fse, 4.0, {"T1-C3": []})
    events = _updates(fse, 3.1, 4.0)
    departed_at = START + timedelta(seconds=4)
    assert events == [
        Event(departed_at, EventKind.DEPARTED, "T1", newcomer.loco_id, "T1-B"),
        Event(departed_at, EventKind.STATION_FREED, "T1", newcomer.loco_id, "T1-B"),
    ]


def test_a_shunt_seen_by_cameras_sampled_apart_keeps_its_id(facility: Facility) -> None:
    """A locomotive shunting up T1 at the demo's pace: T1-C3 and T1-C4 see where it is, T1-C2, half a
    second behind, still sees its tail where it was, with free track between. The tail is the first
    run along the track but overlaps the locomotive less: it must not take the locomotive's id."""
    fse = FacilityStateEstimator(facility)
    standing = {"T1-C1": [(11.9, 15.3)], "T1-C2": [(13.4, 27.3)], "T1-C3": [(25.4, 35.2)], "T1-C4": []}
    _report(fse, 0.0, standing)
    events = _updates(fse, 0.0, 9.9)
    [loco] = fse.locos()
    _report(fse, 10.0, {"T1-C1": [], "T1-C2": [(23.8, 27.3)]})
    events += _updates(fse, 10.0, 10.4)
    _report(fse, 10.5, {"T1-C3": [(30.3, 39.3)], "T1-C4": [(37.4, 47.2)]})
    events += _updates(fse, 10.5, 10.9)
    _report(fse, 11.0, {"T1-C1": [], "T1-C2": []})
    events += _updates(fse, 11.0, 25.0)
    assert [e.kind for e in events if e.kind in (EventKind.ARRIVED, EventKind.DEPARTED)] == [
        EventKind.ARRIVED
    ]
    [after] = fse.locos()
    assert after.loco_id == loco.loco_id and (after.start_m, after.end_m) == (30.3, 47.2)
    moved = [e for e in events if e.kind is EventKind.MOVED]
    assert [(e.loco_id, e.station) for e in moved] == [(loco.loco_id, "T1-B")]


def test_a_view_older_than_max_age_is_unknown_from_just_past_the_boundary(facility: Facility) -> None:
    """T1-C2 reports a locomotive once; its neighbours on T1 go on reporting. Exactly max_age later its
    view still counts; a microsecond past, the stretch only it sees is unknown: neither free (the
    locomotive would depart) nor occupied (it would be seen there now); the locomotive stays as last
    seen."""
    fse = FacilityStateEstimator(facility)
    max_age = fse.settings.max_age
    neighbours = ("T1-C1", "T1-C3", "T1-C4")
    for cid in neighbours:
        assert fse.observe(Observation(cid, START, ()))
    assert fse.observe(Observation("T1-C2", START, (SeenExtent(17.0, 23.0, False, False, 0.9),)))
    fse.update(START)
    [loco] = fse.locos()

    def t1(events: list[Event]) -> tuple[list[tuple[str, str | None]], list[Loco], list[tuple[float, float]]]:
        """T1's events, locomotives and unknown stretches (to the millimetre)."""
        [state] = [s for s in fse.state() if s.track_id == "T1"]
        unknown = [(round(lo, 3), round(hi, 3)) for lo, hi in state.unknown]
        return [(e.kind, e.camera_id) for e in events if e.track_id == "T1"], list(state.locos), unknown

    for cid in neighbours:
        assert fse.observe(Observation(cid, START + max_age, ()))
    events, locos, unknown = t1(fse.update(START + max_age))
    assert (events, unknown) == ([], []), "at max_age T1-C2's view still counts"
    assert [(lo.loco_id, lo.last_seen) for lo in locos] == [(loco.loco_id, START + max_age)]

    events, locos, unknown = t1(fse.update(START + max_age + timedelta(microseconds=1)))
    assert events == [(EventKind.CAMERA_UNSEEN, "T1-C2")]
    # Only T1-C2 sees its seen stretch (about 14.2-25.0 m: the neighbours' seen stretches end before).
    seen_lo, seen_hi = seen_stretches(facility, "T1")["T1-C2"]
    assert unknown == [(round(seen_lo, 1), round(seen_hi, 1))], "past max_age only T1-C2's stretch is unknown"
    assert [(lo.loco_id, lo.start_m, lo.end_m, lo.last_seen) for lo in locos] == [
        (loco.loco_id, loco.start_m, loco.end_m, START + max_age)
    ], "the locomotive stays where it was last seen, and is not seen since"


def test_a_locomotive_across_the_gap_between_two_cameras_seen_stretches_is_one(facility: Facility) -> None:
    """The example's T1-C1 and T1-C2 see a locomotive's side up to about 13.0 m and from about 14.2 m:
    a locomotive across that gap shows as two runs, one ending at each border beyond view. Nobody saw
    the gap free, so it is one locomotive; when it leaves, the unseen gap does not keep it."""
    seen = seen_stretches(facility, "T1")
    c1_end, c2_start = seen["T1-C1"][1], seen["T1-C2"][0]
    assert c2_start - c1_end > FseSettings().bridge_m  # wider than a gangway
    fse = FacilityStateEstimator(facility)
    others = ("T1-C3", "T1-C4")
    reports = {
        "T1-C1": (SeenExtent(5.0, c1_end, False, True, 0.9),),
        "T1-C2": (SeenExtent(c2_start, 20.0, True, False, 0.9),),
    }
    for cid in others:
        fse.observe(Observation(cid, START, ()))
    for cid, extents in reports.items():
        fse.observe(Observation(cid, START, extents))
    fse.update(START)
    [loco] = fse.locos()
    assert (loco.start_m, loco.end_m) == pytest.approx((5.0, 20.0), abs=0.1)
    assert loco.start_seen and loco.end_seen
    later = START + timedelta(seconds=5)
    for cid in (*others, *reports):
        fse.observe(Observation(cid, later, ()))
    events = fse.update(later)
    assert fse.locos() == []
    assert EventKind.DEPARTED in [e.kind for e in events if e.loco_id == loco.loco_id]


def test_two_locomotives_with_a_seen_free_gap_between_them_stay_two(facility: Facility) -> None:
    seen = seen_stretches(facility, "T1")
    lo, _ = seen["T1-C2"]
    fse = FacilityStateEstimator(facility)
    for cid in ("T1-C1", "T1-C3", "T1-C4"):
        fse.observe(Observation(cid, START, ()))
    # 2 m apart, both ends in T1-C2's seen stretch: the gap between them is seen free.
    fse.observe(
        Observation(
            "T1-C2",
            START,
            (
                SeenExtent(lo + 0.5, lo + 4.0, False, False, 0.9),
                SeenExtent(lo + 6.0, lo + 9.0, False, False, 0.9),
            ),
        )
    )
    fse.update(START)
    assert len(fse.locos()) == 2
