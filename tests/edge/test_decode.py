"""LPE post-processing: column scores to extents, fed with hand-made score sequences."""

from __future__ import annotations

import numpy as np
import pytest

from edge.lpe.decode import ColumnScores, decode

WIDTH = 256
M_PER_COL = 0.05
VIEW_START = 10.0


def scores(
    spans: list[tuple[float, float]], starts: list[float] = (), ends: list[float] = ()
) -> ColumnScores:  # type: ignore[assignment]
    centres = np.arange(WIDTH) + 0.5
    occ = np.zeros(WIDTH, np.float32)
    for a, b in spans:
        occ[(centres >= a) & (centres < b)] = 0.95
    bump = lambda c: np.exp(-0.5 * ((centres - c) / 1.5) ** 2).astype(np.float32)  # noqa: E731
    start = np.max([bump(c) for c in starts], axis=0) if starts else np.zeros(WIDTH, np.float32)
    end = np.max([bump(c) for c in ends], axis=0) if ends else np.zeros(WIDTH, np.float32)
    return ColumnScores(occ, start, end)


def test_a_locomotive_inside_the_view_gets_both_ends_at_the_peaks() -> None:
    [ext] = decode(scores([(40, 200)], starts=[40.2], ends=[199.6]), VIEW_START, M_PER_COL)
    assert ext.start_m == pytest.approx(VIEW_START + 40.2 * M_PER_COL, abs=0.02)
    assert ext.end_m == pytest.approx(VIEW_START + 199.6 * M_PER_COL, abs=0.02)
    assert not ext.start_beyond_view and not ext.end_beyond_view
    assert ext.confidence == pytest.approx(0.95)


def test_a_run_touching_the_border_without_an_end_peak_is_beyond_view() -> None:
    [ext] = decode(scores([(0, 120)], ends=[120.0]), VIEW_START, M_PER_COL)
    assert ext.start_beyond_view and ext.start_m == VIEW_START
    assert not ext.end_beyond_view
    [ext] = decode(scores([(0, 256)]), VIEW_START, M_PER_COL)
    assert ext.start_beyond_view and ext.end_beyond_view
    assert (ext.start_m, ext.end_m) == (VIEW_START, VIEW_START + WIDTH * M_PER_COL)


def test_an_end_exactly_at_the_border_with_a_peak_is_visible() -> None:
    [ext] = decode(scores([(1, 256)], starts=[1.0]), VIEW_START, M_PER_COL)
    assert not ext.start_beyond_view
    assert ext.end_beyond_view


def test_the_gangway_gap_of_a_two_section_loco_does_not_split_it() -> None:
    extents = decode(scores([(10, 100), (105, 240)], starts=[10], ends=[240]), VIEW_START, M_PER_COL)
    assert len(extents) == 1


def test_two_locomotives_a_metre_apart_stay_two() -> None:
    extents = decode(
        scores([(10, 100), (120, 240)], starts=[10, 120], ends=[100, 240]), VIEW_START, M_PER_COL
    )
    assert [(round(e.start_m, 1), round(e.end_m, 1)) for e in extents] == [(10.5, 15.0), (16.0, 22.0)]


def test_short_blobs_and_empty_strips_give_nothing() -> None:
    assert decode(scores([(50, 60)]), VIEW_START, M_PER_COL) == []
    assert decode(scores([]), VIEW_START, M_PER_COL) == []


# What follows pins each bound and each fallback exactly, so that `make mutate MODULE=decode`
# (docs/testing.md) finds no small change to edge/lpe/decode.py that the tests let through.


def _at(column: float) -> float:
    return round(VIEW_START + column * M_PER_COL, 3)


def _edge(profile: dict[int, float]) -> np.ndarray:
    edge = np.zeros(WIDTH, np.float32)
    for column, value in profile.items():
        edge[column] = value
    return edge


def test_an_end_is_placed_at_its_peak_within_a_metre_of_the_run_not_at_the_run() -> None:
    [ext] = decode(scores([(40, 200)], starts=[45.0], ends=[190.0]), VIEW_START, M_PER_COL)
    assert (ext.start_m, ext.end_m) == (
        pytest.approx(_at(45.0), abs=0.01),
        pytest.approx(_at(190.0), abs=0.01),
    )


def test_an_end_is_the_centroid_of_five_columns_around_the_peak() -> None:
    occupancy = scores([(40, 200)]).occupancy
    # Columns 42..48 around a peak at 45; the two outermost (0.4) lie outside the five that count.
    start = _edge({42: 0.4, 43: 0.4, 44: 0.6, 45: 1.0, 46: 0.6, 47: 0.2, 48: 0.4})
    end = _edge({195: 0.35 * 0.6, 196: 0.35, 197: 0.35 * 0.6})  # faint: the weights sum to under 1
    [ext] = decode(ColumnScores(occupancy, start, end), VIEW_START, M_PER_COL)
    centroid = (43.5 * 0.4 + 44.5 * 0.6 + 45.5 * 1.0 + 46.5 * 0.6 + 47.5 * 0.2) / 2.8
    assert ext.start_m == _at(centroid)
    assert ext.end_m == _at(196.5)


def test_an_end_peak_in_the_first_column_is_found() -> None:
    occupancy = scores([(0, 120)]).occupancy
    start = _edge({0: 1.0, 1: 0.5, 2: 0.5, 3: 0.5})
    [ext] = decode(ColumnScores(occupancy, start, _edge({})), VIEW_START, M_PER_COL)
    assert not ext.start_beyond_view
    assert ext.start_m == _at((0.5 * 1.0 + 1.5 * 0.5 + 2.5 * 0.5) / 2.0)


def test_a_run_inside_the_view_without_end_peaks_ends_at_its_borders() -> None:
    [ext] = decode(scores([(40, 200)]), VIEW_START, M_PER_COL)
    assert (ext.start_m, ext.end_m) == (_at(40), _at(200))
    assert not ext.start_beyond_view and not ext.end_beyond_view


@pytest.mark.parametrize(("start", "beyond"), [(2, True), (3, False)])
def test_a_run_within_two_columns_of_the_border_without_a_peak_is_beyond_view(
    start: int, beyond: bool
) -> None:
    [ext] = decode(scores([(start, WIDTH - start)]), VIEW_START, M_PER_COL)
    assert (ext.start_beyond_view, ext.end_beyond_view) == (beyond, beyond)
    # Beyond the view, an end is put at the view's border; otherwise at the run's.
    assert ext.start_m == (VIEW_START if beyond else _at(start))
    assert ext.end_m == (_at(WIDTH) if beyond else _at(WIDTH - start))


def test_a_column_at_exactly_the_occupancy_threshold_is_free() -> None:
    occupancy = np.full(WIDTH, 0.5, np.float32)
    assert decode(ColumnScores(occupancy, _edge({}), _edge({})), VIEW_START, M_PER_COL) == []


@pytest.mark.parametrize(("gap", "count"), [(8, 1), (9, 2)])
def test_a_gap_of_up_to_forty_centimetres_is_a_gangway(gap: int, count: int) -> None:
    extents = decode(scores([(40, 100), (100 + gap, 200)]), VIEW_START, M_PER_COL)
    assert len(extents) == count
    assert (extents[0].start_m, extents[-1].end_m) == (_at(40), _at(200))


@pytest.mark.parametrize(("length", "count"), [(20, 1), (19, 0)])
def test_a_run_of_a_metre_is_the_shortest_reported(length: int, count: int) -> None:
    assert len(decode(scores([(100, 100 + length)]), VIEW_START, M_PER_COL)) == count


def test_a_short_blob_before_a_locomotive_does_not_hide_it() -> None:
    [ext] = decode(scores([(10, 15), (40, 200)]), VIEW_START, M_PER_COL)
    assert (ext.start_m, ext.end_m) == (_at(40), _at(200))


def test_ends_that_meet_or_cross_fall_back_to_the_run_borders() -> None:
    [ext] = decode(scores([(100, 120)], starts=[110.0], ends=[110.0]), VIEW_START, M_PER_COL)
    assert (ext.start_m, ext.end_m) == (_at(100), _at(120))


def test_columns_wider_than_the_edge_window_end_at_the_run_borders() -> None:
    """At 2.5 m a column the ±1 m end search covers no column: ends fall back to the run borders."""
    coarse = ColumnScores(
        np.array([0.9, 0.9, 0.9, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0], np.float32),
        np.ones(10, np.float32),
        np.ones(10, np.float32),
    )
    first, second = decode(coarse, VIEW_START, 2.5)
    assert (first.start_m, first.end_m, first.start_beyond_view, first.end_beyond_view) == (
        VIEW_START,
        VIEW_START + 7.5,
        True,
        False,
    )
    assert (second.start_m, second.end_m) == (VIEW_START + 12.5, VIEW_START + 17.5)


def test_positions_and_confidence_are_rounded_to_three_decimals() -> None:
    occupancy = np.zeros(WIDTH, np.float32)
    occupancy[40:200] = 0.91234
    [ext] = decode(ColumnScores(occupancy, _edge({}), _edge({})), 10.00004, M_PER_COL)
    assert (ext.start_m, ext.end_m, ext.confidence) == (12.0, 20.0, 0.912)
    [ext] = decode(ColumnScores(occupancy, _edge({}), _edge({})), 10.0004, M_PER_COL)
    assert (ext.start_m, ext.end_m) == (12.0, 20.0)


SEEN = (20, 230)


def test_a_run_reaching_the_unseen_columns_ends_at_the_seen_border_beyond_view() -> None:
    # The image shows no locomotive side past the seen columns: an end peak there is not read.
    [ext] = decode(scores([(5, 240)], starts=[6.0], ends=[239.0]), VIEW_START, M_PER_COL, SEEN)
    assert ext.start_beyond_view and ext.end_beyond_view
    assert (ext.start_m, ext.end_m) == (VIEW_START + SEEN[0] * M_PER_COL, VIEW_START + SEEN[1] * M_PER_COL)


def test_an_end_peak_inside_the_seen_columns_is_placed_there() -> None:
    [ext] = decode(scores([(30, 240)], starts=[30.0], ends=[228.0]), VIEW_START, M_PER_COL, SEEN)
    assert not ext.start_beyond_view and not ext.end_beyond_view
    assert ext.end_m == pytest.approx(VIEW_START + 228.0 * M_PER_COL, abs=0.02)


def test_occupancy_only_in_the_unseen_columns_is_no_locomotive() -> None:
    assert decode(scores([(232, 256)], starts=[232.0]), VIEW_START, M_PER_COL, SEEN) == []


def test_a_locomotive_reaching_into_the_seen_columns_by_less_than_a_run_is_still_seen() -> None:
    # 1.8 m occupied, of which 0.5 m in the seen columns: a locomotive running out of the view.
    [ext] = decode(scores([(220, 256)], starts=[220.0]), VIEW_START, M_PER_COL, SEEN)
    assert not ext.start_beyond_view and ext.end_beyond_view
    assert ext.start_m == pytest.approx(VIEW_START + 220.0 * M_PER_COL, abs=0.02)


def test_a_short_run_at_the_seen_border_is_a_locomotive_only_with_an_inner_end() -> None:
    # 0.5 m entering the view, its inner end seen: a locomotive; the same without an end: noise.
    [ext] = decode(scores([(20, 30)], ends=[30.0]), VIEW_START, M_PER_COL, SEEN)
    assert ext.start_beyond_view and not ext.end_beyond_view
    assert decode(scores([(20, 30)]), VIEW_START, M_PER_COL, SEEN) == []
    # Away from the border a run that short is noise even with end peaks.
    assert decode(scores([(100, 110)], starts=[100.0], ends=[110.0]), VIEW_START, M_PER_COL, SEEN) == []
