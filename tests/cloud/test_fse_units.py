"""The estimator's rules one at a time, on T1 of the example layout (cameras 1.4–15.3, 13.4–27.3,
25.4–39.3 and 37.4–51.3 m; stations T1-A 2.5–26.0 and T1-B 27.0–50.5 m), fed hand-written views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.fse import Event, EventKind, FacilityStateEstimator, FseSettings, Loco, Observation, SeenExtent
from cloud.fse_match import pair_runs
from shared.layout import Facility, Interval

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
T1 = ("T1-C1", "T1-C2", "T1-C3", "T1-C4")


def _on_views(facility: Facility, *args: object, **kwargs: object) -> FacilityStateEstimator:
    """An estimator whose cameras vouch for their whole views: these are the fusion's rules, on the
    views the layout states (what the example's LPE can place is less: tests/cloud/test_fse.py)."""
    views = {cid: (cam.view.start_m, cam.view.end_m) for cid, cam in facility.cameras.items()}
    return FacilityStateEstimator(facility, *args, vouched=views, **kwargs)  # type: ignore[arg-type]


def at(s: float) -> datetime:
    return START + timedelta(seconds=s)


def see(
    fse: FacilityStateEstimator,
    s: float,
    locos: list[tuple[float, float]],
    offline: tuple[str, ...] = (),
    confidence: float = 0.9,
) -> list[Event]:
    """Every T1 camera reports at `s` what it sees of `locos` (track spans), then an update at `s`."""
    for cid in T1:
        view = fse.facility.cameras[cid].view
        extents = tuple(
            SeenExtent(max(a, view.start_m), min(b, view.end_m), a < view.start_m, b > view.end_m, confidence)
            for a, b in locos
            if min(b, view.end_m) > max(a, view.start_m)
        )
        online = cid not in offline
        assert fse.observe(Observation(cid, at(s), extents if online else (), online=online))
    return [e for e in fse.update(at(s)) if e.track_id == "T1"]


def spans(fse: FacilityStateEstimator) -> list[tuple[float, float]]:
    return [(lo.start_m, lo.end_m) for lo in fse.locos()]


def stored(loco_id: str, start: float, end: float, **fields: object) -> Loco:
    values: dict[str, object] = {
        "loco_id": loco_id,
        "track_id": "T1",
        "start_m": start,
        "end_m": end,
        "start_seen": True,
        "end_seen": True,
        "station": "T1-A",
        "moving": False,
        "first_seen": START - timedelta(days=1),
        "last_seen": START - timedelta(minutes=1),
        "confidence": 0.9,
        "settled": (start, end),
        "still_since": START - timedelta(days=1),
        "length_m": round(end - start, 2),
    }
    values.update(fields)
    return Loco.model_construct(**values)  # unvalidated: some values are pytest.approx


# --- restoring after a restart -------------------------------------------------------------------


def test_restored_views_count_until_the_cameras_report_again(facility: Facility) -> None:
    fse = _on_views(facility)
    older = Observation("T1-C2", at(-5), (SeenExtent(20.0, 26.0, False, False),))
    newer = Observation("T1-C2", at(-2), (SeenExtent(14.0, 22.0, False, False),))
    elsewhere = Observation("T9-C1", at(-1), (SeenExtent(1.0, 9.0, False, False),))
    fse.restore_views([newer, elsewhere, older])
    events = fse.update(at(0))
    assert [(lo.start_m, lo.end_m, lo.start_seen, lo.end_seen) for lo in fse.locos()] == [
        (14.0, 22.0, True, True)
    ]
    assert [e.kind for e in events if e.track_id == "T1"] == [EventKind.ARRIVED, EventKind.STATION_OCCUPIED]


def test_restored_views_at_one_instant_keep_the_first(facility: Facility) -> None:
    fse = _on_views(facility)
    first = Observation("T1-C2", at(-2), (SeenExtent(14.0, 22.0, False, False),))
    second = Observation("T1-C2", at(-2), (SeenExtent(16.0, 26.0, False, False),))
    fse.restore_views([first, second])
    fse.update(at(0))
    assert spans(fse) == [(14.0, 22.0)]


def test_a_restored_view_older_than_the_current_one_is_ignored(facility: Facility) -> None:
    fse = _on_views(facility)
    assert fse.observe(Observation("T1-C2", at(0), (SeenExtent(14.0, 22.0, False, False),)))
    fse.update(at(0))
    fse.restore_views([Observation("T1-C2", at(-10), (SeenExtent(16.0, 26.0, False, False),))])
    fse.update(at(1))
    assert spans(fse) == [(14.0, 22.0)]


def test_restored_locomotives_keep_their_ids_and_depart_by_them(facility: Facility) -> None:
    fse = _on_views(facility)
    fse.restore([stored("L00042", 14.0, 22.0), stored("L00043", 14.0, 22.0, track_id="T9")])
    assert [lo.loco_id for lo in fse.locos()] == ["L00042"]
    events = see(fse, 0, [(14.2, 22.0)])
    assert events == []
    assert [(lo.loco_id, lo.start_m, lo.end_m) for lo in fse.locos()] == [("L00042", 14.2, 22.0)]
    events = see(fse, 1, [])
    assert events == [
        Event(at(1), EventKind.DEPARTED, "T1", "L00042", "T1-A"),
        Event(at(1), EventKind.STATION_FREED, "T1", "L00042", "T1-A"),
    ]


# --- whole events --------------------------------------------------------------------------------


def test_camera_events_name_the_camera_and_its_view(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [])
    assert see(fse, 1, [], offline=("T1-C2",)) == [
        Event(at(1), EventKind.CAMERA_UNSEEN, "T1", camera_id="T1-C2", detail="13.4–27.3 m")
    ]
    assert see(fse, 2, []) == [
        Event(at(2), EventKind.CAMERA_SEEN, "T1", camera_id="T1-C2", detail="13.4–27.3 m")
    ]


def test_arrival_station_and_departure_events_are_whole(facility: Facility) -> None:
    fse = _on_views(facility, settings=FseSettings(confirm_s=0))
    see(fse, 0, [])
    assert see(fse, 1, [(30.0, 40.0)]) == [
        Event(at(1), EventKind.ARRIVED, "T1", "L00001", "T1-B"),
        Event(at(1), EventKind.STATION_OCCUPIED, "T1", "L00001", "T1-B"),
    ]
    assert see(fse, 2, []) == [
        Event(at(2), EventKind.DEPARTED, "T1", "L00001", "T1-B"),
        Event(at(2), EventKind.STATION_FREED, "T1", "L00001", "T1-B"),
    ]


def test_a_move_between_stations_frees_one_and_occupies_the_other(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    events = see(fse, 1, [(14.0, 24.0)])
    events += see(fse, 2, [(18.0, 28.0)])
    events += see(fse, 3, [(24.0, 34.0)])
    assert events == [
        Event(at(3), EventKind.STATION_OCCUPIED, "T1", "L00001", "T1-B"),
        Event(at(3), EventKind.STATION_FREED, "T1", "L00001", "T1-A"),
    ]


# --- cells and runs ------------------------------------------------------------------------------


def test_a_run_exactly_min_run_long_is_a_locomotive_and_a_shorter_one_is_not(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(20.0, 22.0), (30.0, 31.9)])
    assert spans(fse) == [(20.0, 22.0)]


def test_runs_a_gap_of_exactly_bridge_m_apart_are_one_locomotive(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 14.0), (14.8, 20.0), (30.0, 34.0), (34.9, 40.0)])
    assert spans(fse) == [(10.0, 20.0), (30.0, 34.0), (34.9, 40.0)]


def test_runs_first_along_the_track_bridge_too(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(1.4, 5.0), (5.5, 9.0)])
    [loco] = fse.locos()
    assert (loco.start_m, loco.end_m, loco.start_seen, loco.end_seen) == (1.4, 9.0, False, True)


def test_confidence_is_the_mean_over_the_run(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(20.0, 24.0)], confidence=0.8)
    [loco] = fse.locos()
    assert loco.confidence == pytest.approx(0.8)
    see(fse, 1, [(20.0, 24.0)], confidence=0.6)
    [loco] = fse.locos()
    assert loco.confidence == pytest.approx(0.6)


# --- ends and length -----------------------------------------------------------------------------


def test_a_new_locomotive_seen_whole_has_its_length(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0), (45.0, 60.0)])
    first = {"first_seen": at(0), "last_seen": at(0), "still_since": at(0), "confidence": pytest.approx(0.9)}
    assert sorted(fse.locos(), key=lambda lo: lo.start_m) == [
        stored("L00001", 10.0, 20.0, settled=pytest.approx((10.0, 20.0)), **first),
        stored(
            "L00002",
            45.0,
            51.3,
            end_seen=False,
            station="T1-B",
            settled=pytest.approx((45.0, 51.3)),
            length_m=None,
            **first,
        ),
    ]


def test_an_end_out_of_sight_keeps_the_known_length_as_it_moves(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    # T1-C2 goes down: 15.3–25.4 m is unknown; T1-C1 sees the start, the end beyond its view.
    see(fse, 1, [(12.0, 22.0)], offline=("T1-C2",))
    [loco] = fse.locos()
    assert (loco.start_m, loco.end_m, loco.start_seen, loco.end_seen) == (12.0, 22.0, True, False)
    assert loco.length_m == 10.0


def test_a_start_out_of_sight_keeps_the_known_length_as_it_moves(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(30.0, 40.0)])
    # T1-C3 goes down: 27.3–37.4 m is unknown; T1-C4 sees the end, the start beyond its view.
    see(fse, 1, [(32.0, 42.0)], offline=("T1-C3",))
    [loco] = fse.locos()
    assert (loco.start_m, loco.end_m, loco.start_seen, loco.end_seen) == (32.0, 42.0, False, True)
    assert loco.length_m == 10.0


def test_ends_out_of_sight_of_a_locomotive_of_unknown_length_stay_where_they_were(
    facility: Facility,
) -> None:
    """A restored locomotive never seen whole and never settled: its hidden ends keep their places."""
    unsettled = {"settled": (0.0, 0.0), "length_m": None}
    fse = _on_views(facility)
    fse.restore(
        [
            stored("L00007", 10.0, 20.0, end_seen=False, **unsettled),
            stored("L00008", 30.0, 40.0, start_seen=False, **unsettled),
        ]
    )
    see(fse, 0, [(12.0, 22.0), (32.0, 42.0)], offline=("T1-C2", "T1-C3"))
    assert [(lo.loco_id, lo.start_m, lo.end_m, lo.start_seen, lo.end_seen) for lo in fse.locos()] == [
        ("L00007", 12.0, 20.0, True, False),
        ("L00008", 30.0, 42.0, False, True),
    ]


def test_ends_out_of_sight_of_a_locomotive_seen_whole_keep_its_length(facility: Facility) -> None:
    seen_whole = {"settled": (0.0, 0.0)}
    fse = _on_views(facility)
    fse.restore([stored("L00007", 10.0, 20.0, **seen_whole), stored("L00008", 30.0, 40.0, **seen_whole)])
    see(fse, 0, [(12.0, 22.0), (32.0, 42.0)], offline=("T1-C2", "T1-C3"))
    assert spans(fse) == [(12.0, 22.0), (32.0, 42.0)]


def test_a_locomotive_hidden_entirely_stays_and_one_seen_free_departs(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(17.0, 24.0)])
    assert see(fse, 1, [], offline=("T1-C2",))[0].kind is EventKind.CAMERA_UNSEEN
    assert spans(fse) == [(17.0, 24.0)]
    events = see(fse, 2, [])
    assert [e.kind for e in events] == [EventKind.CAMERA_SEEN, EventKind.DEPARTED, EventKind.STATION_FREED]


# --- movement ------------------------------------------------------------------------------------


def test_a_move_is_reported_once_the_locomotive_has_stood_settle_s(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    assert see(fse, 1, [(11.5, 21.5)]) == []
    [loco] = fse.locos()
    assert loco.moving and loco.still_since == at(1) and loco.settled == (10.0, 20.0)
    # A step of still_m (back by 0.3 m) is standing still.
    assert see(fse, 2, [(11.2, 21.2)]) == []
    assert see(fse, 10.9, [(11.2, 21.2)]) == []
    [loco] = fse.locos()
    assert loco.moving and loco.still_since == at(1)
    assert see(fse, 11, [(11.2, 21.2)]) == [
        Event(at(11), EventKind.MOVED, "T1", "L00001", "T1-A", detail="from 10.0–20.0 m to 11.2–21.2 m")
    ]
    [loco] = fse.locos()
    assert loco.moving is False and loco.settled == pytest.approx((11.2, 21.2)) and loco.still_since == at(1)


def test_a_step_just_over_still_m_restarts_the_settling(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    see(fse, 1, [(11.2, 21.2)])
    see(fse, 2, [(11.6, 21.6)])
    [loco] = fse.locos()
    assert loco.still_since == at(2)
    assert see(fse, 11.9, [(11.6, 21.6)]) == []
    assert [e.kind for e in see(fse, 12, [(11.6, 21.6)])] == [EventKind.MOVED]


def test_a_drift_of_exactly_moved_m_is_no_move(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    see(fse, 1, [(10.5, 20.5)])
    see(fse, 2, [(11.0, 21.0)])
    [loco] = fse.locos()
    assert not loco.moving
    assert see(fse, 20, [(11.0, 21.0)]) == []


def test_a_locomotive_that_moves_and_comes_back_reports_no_move(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.0)])
    see(fse, 1, [(12.0, 22.0)])
    see(fse, 2, [(10.0, 20.0)])
    assert see(fse, 12, [(10.0, 20.0)]) == []
    [loco] = fse.locos()
    assert not loco.moving and loco.settled == (10.0, 20.0)


def test_positions_are_rounded_to_the_centimetre(facility: Facility) -> None:
    fse = _on_views(facility)
    unsettled = {"settled": (0.0, 0.0), "length_m": None}
    fse.restore(
        [
            stored("L00005", 10.004, 20.004, end_seen=False, **unsettled),
            stored("L00006", 30.004, 40.004, start_seen=False, **unsettled),
        ]
    )
    see(fse, 0, [(10.0, 20.0), (30.0, 40.0)], offline=("T1-C2", "T1-C3"))
    assert [(lo.start_m, lo.end_m, lo.start_seen, lo.end_seen, lo.length_m) for lo in fse.locos()] == [
        (10.0, 20.0, True, False, None),
        (30.0, 40.0, False, True, None),
    ]


# --- matching ------------------------------------------------------------------------------------


def test_pairs_need_min_overlap_within_the_slack() -> None:
    # Overlap 0.5 exactly pairs; 0.4 does not.
    assert pair_runs([(0.0, 5.0)], {"a": (4.5, 10.0)}, 0.5, 0.0) == {"a": 0}
    assert pair_runs([(0.0, 5.0)], {"a": (4.6, 10.0)}, 0.5, 0.0) == {}
    # Apart by 1 m: the near overlap less the 1 m gap must exceed min_overlap (slack 3 m: 2 - 1).
    assert pair_runs([(0.0, 5.0)], {"a": (6.0, 10.0)}, 0.5, 3.0) == {"a": 0}
    assert pair_runs([(6.0, 10.0)], {"a": (0.0, 5.0)}, 0.5, 3.0) == {"a": 0}
    assert pair_runs([(0.0, 5.0)], {"a": (6.0, 10.0)}, 0.5, 2.5) == {}  # 1.5 - 1 is not above 0.5
    assert pair_runs([(6.0, 10.0)], {"a": (0.0, 5.0)}, 0.5, 2.5) == {}


def test_the_best_overlap_pairs_first() -> None:
    runs = [(0.0, 4.0), (5.0, 15.0)]
    assert pair_runs(runs, {"a": (3.0, 14.0)}, 0.5, 6.0) == {"a": 1}
    assert pair_runs(runs, {"a": (3.0, 14.0), "b": (0.0, 3.0)}, 0.5, 6.0) == {"a": 1, "b": 0}
    # A near miss counts after true overlap: both 1 m from the span, the run overlapping it wins.
    assert pair_runs([(20.0, 21.0), (9.0, 11.0)], {"a": (10.0, 19.0)}, 0.5, 6.0) == {"a": 1}
    # Ties go to the earlier run, then to the earlier span.
    assert pair_runs([(0.0, 2.0), (8.0, 10.0)], {"a": (2.0, 8.0)}, 0.5, 6.0) == {"a": 0}
    assert pair_runs([(0.0, 4.0)], {"a": (0.0, 4.0), "b": (0.0, 4.0)}, 0.5, 0.0) == {"a": 0}


# --- observing -----------------------------------------------------------------------------------


def test_an_observation_not_newer_than_the_latest_waiting_one_is_refused(facility: Facility) -> None:
    fse = _on_views(facility)
    for s in (1, 2, 3):
        assert fse.observe(Observation("T1-C2", at(s), ()))
    assert not fse.observe(Observation("T1-C2", at(3), ()))
    assert not fse.observe(Observation("T1-C2", at(2.5), ()))
    with pytest.raises(KeyError, match="T9-C1"):
        fse.observe(Observation("T9-C1", at(4), ()))


def test_an_update_takes_the_latest_observation_due(facility: Facility) -> None:
    fse = _on_views(facility)
    assert fse.observe(Observation("T1-C2", at(1), (SeenExtent(20.0, 26.0, False, False),)))
    assert fse.observe(Observation("T1-C2", at(2), (SeenExtent(14.0, 22.0, False, False),)))
    assert fse.observe(Observation("T1-C2", at(3), ()))
    fse.update(at(2))
    assert spans(fse) == [(14.0, 22.0)]


# --- the track's ends and unseen stretches -------------------------------------------------------


def wide(facility: Facility) -> Facility:
    """The example layout with T1's end cameras widened to see the whole track, 0–70 m."""
    cameras = dict(facility.cameras)
    for cid, lo, hi in (("T1-C1", 0.0, 15.3), ("T1-C4", 37.4, 70.0)):
        cameras[cid] = cameras[cid].model_copy(update={"view": Interval(start_m=lo, end_m=hi)})
    return facility.model_copy(update={"cameras": cameras})


def test_a_locomotive_at_the_track_s_ends_is_not_seen_beyond_them(facility: Facility) -> None:
    fse = _on_views(wide(facility))
    see(fse, 0, [(0.0, 8.0), (60.0, 70.0)])
    assert [(lo.start_m, lo.end_m, lo.start_seen, lo.end_seen) for lo in fse.locos()] == [
        (0.0, 8.0, False, True),
        (60.0, 70.0, True, False),
    ]
    # Alone on the track, with its far end seen free.
    fse = _on_views(wide(facility))
    see(fse, 0, [(0.0, 8.0)])
    assert [(lo.start_m, lo.start_seen) for lo in fse.locos()] == [(0.0, False)]


def test_a_locomotive_a_cell_from_the_track_s_start_is_seen_whole(facility: Facility) -> None:
    fse = _on_views(wide(facility))
    see(fse, 0, [(0.1, 8.0)])
    [loco] = fse.locos()
    assert (loco.start_m, loco.start_seen, loco.length_m) == (0.1, True, 7.9)


def test_a_start_next_to_the_edge_of_coverage_is_seen(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(1.5, 8.0)])
    [loco] = fse.locos()
    assert (loco.start_m, loco.start_seen) == (1.5, True)


def test_every_unseen_stretch_is_reported(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [], offline=("T1-C2", "T1-C4"))
    [t1] = [s for s in fse.state() if s.track_id == "T1"]
    assert t1.unknown == ((15.3, 25.4), (39.3, 51.3))


def test_a_restored_locomotive_of_no_length_stays_only_while_its_cell_is_unknown(facility: Facility) -> None:
    fse = _on_views(facility)
    fse.restore([stored("L00001", 15.2, 15.2), stored("L00002", 20.0, 20.0)])
    # T1-C2 down: 15.3–25.4 m is unknown; 15.2 m is T1-C1's, seen free.
    events = see(fse, 0, [], offline=("T1-C2",))
    assert [(e.kind, e.loco_id) for e in events if e.kind is EventKind.DEPARTED] == [
        (EventKind.DEPARTED, "L00001")
    ]
    assert [lo.loco_id for lo in fse.locos()] == ["L00002"]


def test_the_length_follows_a_locomotive_seen_whole(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(10.0, 20.5)])
    [loco] = fse.locos()
    assert loco.length_m == 10.5
    see(fse, 1, [(10.0, 20.7)])
    [loco] = fse.locos()
    assert loco.length_m == 10.7


def test_a_move_back_to_exactly_moved_m_from_where_it_stood_is_no_move(facility: Facility) -> None:
    fse = _on_views(facility)
    see(fse, 0, [(20.0, 30.0)])
    see(fse, 1, [(21.5, 31.5)])
    see(fse, 2, [(21.0, 31.0)])
    assert see(fse, 12, [(21.0, 31.0)]) == []
    [loco] = fse.locos()
    assert not loco.moving and loco.settled == (21.0, 31.0)


def test_a_step_of_exactly_still_m_is_standing_still(facility: Facility) -> None:
    fse = _on_views(facility, settings=FseSettings(still_m=0.5))
    see(fse, 0, [(10.0, 20.0)])
    see(fse, 1, [(12.0, 22.0)])
    see(fse, 2, [(12.5, 22.5)])
    [loco] = fse.locos()
    assert loco.moving and loco.still_since == at(1)


@pytest.mark.parametrize(
    ("settled", "ends"),
    [((5.0, 5.0), (12.0, 20.0, 30.0, 42.0)), ((5.0, 5.5), (12.0, 22.0, 32.0, 42.0))],
    ids=["never stood", "stood"],
)
def test_the_length_is_known_once_the_locomotive_has_stood(
    facility: Facility, settled: tuple[float, float], ends: tuple[float, ...]
) -> None:
    """Of a restored locomotive never seen whole, the length is known once it has stood (settled)."""
    fse = _on_views(facility)
    fse.restore(
        [
            stored("L00007", 10.0, 20.0, end_seen=False, settled=settled, length_m=None),
            stored("L00008", 30.0, 40.0, start_seen=False, settled=settled, length_m=None),
        ]
    )
    see(fse, 0, [(12.0, 22.0), (32.0, 42.0)], offline=("T1-C2", "T1-C3"))
    assert [(lo.start_m, lo.end_m) for lo in fse.locos()] == [ends[:2], ends[2:]]


def test_an_end_at_a_track_end_between_cells_is_rounded_to_the_centimetre(facility: Facility) -> None:
    """T1 made 70.125 m long: a run reaching past it ends at the track's end, to the centimetre."""
    layout = wide(facility)
    track = layout.tracks["T1"].model_copy(update={"length_m": 70.125})
    fse = FacilityStateEstimator(layout.model_copy(update={"tracks": {**layout.tracks, "T1": track}}))
    for cid in T1:
        extents = (SeenExtent(60.0, 70.2, False, True),) if cid == "T1-C4" else ()
        assert fse.observe(Observation(cid, at(0), extents))
    fse.update(at(0))
    [loco] = fse.locos()
    assert (loco.start_m, loco.end_m, loco.end_seen) == (60.0, round(70.125, 2), False)
