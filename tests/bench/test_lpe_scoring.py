"""The LPE's scoring of neighbouring tracks' locomotives: a frame with one in view counts as reported
when an estimated extent lies mostly off the own track's locomotives and on the neighbour's."""

from __future__ import annotations

from bench.lpe_scoring import Tally
from shared.messages import LocoExtent
from sim.truth import TruthExtent

VIEW = (0.0, 30.0)


def _truth(start_m: float, end_m: float, plate: str = "TE33A-0001") -> TruthExtent:
    return TruthExtent(
        plate=plate,
        series="TE33A",
        start_m=start_m,
        end_m=end_m,
        start_beyond_view=False,
        end_beyond_view=False,
        moving=False,
    )


def _estimate(start_m: float, end_m: float) -> LocoExtent:
    return LocoExtent(
        start_m=start_m, end_m=end_m, start_beyond_view=False, end_beyond_view=False, confidence=0.9
    )


def _reported(*frames: tuple[list[TruthExtent], list[LocoExtent], list[TruthExtent]]) -> dict[str, float]:
    tally = Tally()
    for truth, estimate, neighbours in frames:
        tally.add(VIEW, truth, estimate, neighbours)
    summary = tally.summary()
    return {key: summary[key] for key in ("neighbour_frames", "neighbour_reported")}


def test_an_extent_on_a_neighbours_locomotive_over_an_empty_track_is_reported() -> None:
    assert _reported(([], [_estimate(5.0, 20.0)], [_truth(5.0, 20.0)])) == {
        "neighbour_frames": 1.0,
        "neighbour_reported": 1.0,
    }
    # A metre of it is enough, as long as it is not on the own track's locomotive; what lies off a
    # locomotive (here the second neighbour's, 6 m away) takes nothing off.
    beside = [_truth(5.0, 19.0, "TE33A-0002"), _truth(28.0, 30.0, "TE33A-0003")]
    assert _reported(([], [_estimate(18.0, 22.0)], beside))["neighbour_reported"] == 1.0


def test_an_extent_that_matches_the_own_tracks_locomotive_is_not() -> None:
    # Both tracks hold a locomotive along the same metres: the estimate is the own track's.
    own, beside = _truth(5.0, 20.0, "TE33A-0001"), _truth(4.0, 22.0, "TE33A-0002")
    assert _reported(([own], [_estimate(5.0, 20.0)], [beside])) == {
        "neighbour_frames": 1.0,
        "neighbour_reported": 0.0,
    }


def test_mostly_on_the_own_locomotive_is_not_reported_mostly_off_it_is() -> None:
    beside = [_truth(0.0, 30.0, "TE33A-0002")]
    # 10 m estimated: 6 m on the own locomotive is most of it, 4 m is not.
    assert _reported(([_truth(0.0, 16.0)], [_estimate(10.0, 20.0)], beside))["neighbour_reported"] == 0.0
    assert _reported(([_truth(0.0, 14.0)], [_estimate(10.0, 20.0)], beside))["neighbour_reported"] == 1.0
    # A second own locomotive 5 m beyond the estimate's end takes nothing off the 6 m.
    own = [_truth(0.0, 16.0), _truth(25.0, 30.0, "TE33A-0003")]
    assert _reported((own, [_estimate(10.0, 20.0)], beside))["neighbour_reported"] == 0.0


def test_an_extent_off_both_tracks_locomotives_is_not_a_neighbour_report() -> None:
    assert _reported(([], [_estimate(22.0, 28.0)], [_truth(5.0, 20.0)]))["neighbour_reported"] == 0.0


def test_frames_without_a_neighbour_in_view_are_not_counted() -> None:
    figures = _reported(
        ([], [_estimate(5.0, 20.0)], [_truth(5.0, 20.0)]),  # reported
        ([], [_estimate(5.0, 20.0)], []),  # a false extent, but no neighbour in view
        ([], [], [_truth(5.0, 20.0)]),  # a neighbour in view, nothing reported
        ([_truth(2.0, 9.0)], [_estimate(2.0, 9.0)], []),
    )
    assert figures == {"neighbour_frames": 2.0, "neighbour_reported": 0.5}
    # With none in view at all, the share is 0, not a division by zero.
    assert _reported(([], [_estimate(5.0, 20.0)], [])) == {"neighbour_frames": 0.0, "neighbour_reported": 0.0}


def test_neighbours_leave_the_own_track_figures_as_they_were() -> None:
    frames = [
        ([], [_estimate(5.0, 20.0)]),
        ([_truth(2.0, 9.0)], [_estimate(2.5, 9.0)]),
        ([_truth(12.0, 30.0)], []),
    ]
    plain, beside = Tally(), Tally()
    for truth, estimate in frames:
        plain.add(VIEW, truth, estimate)
        beside.add(VIEW, truth, estimate, [_truth(5.0, 20.0, "TE33A-0002")])
    without = {k: v for k, v in beside.summary().items() if not k.startswith("neighbour_")}
    assert without == {k: v for k, v in plain.summary().items() if not k.startswith("neighbour_")}
    assert plain.summary()["neighbour_frames"] == 0.0
