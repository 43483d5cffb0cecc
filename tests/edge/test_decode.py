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
