"""Comparing two views of the facility: agreement, end errors, lone locomotives, identity switches."""

from __future__ import annotations

import pytest

from cloud.compare import Comparison, Seen, TrackView, match
from shared.layout import Facility


def test_the_same_locomotive_is_matched_by_overlap_and_others_are_lone() -> None:
    a = [Seen("A1", 3.0, 20.0), Seen("A2", 30.0, 47.0)]
    b = [Seen("B1", 3.5, 19.0), Seen("B9", 55.0, 69.0)]
    pairs, only_a, only_b = match(a, b)
    assert pairs == [(a[0], b[0])] and only_a == [a[1]] and only_b == [b[1]]


def test_agreement_end_errors_and_identity_switches_add_up(facility: Facility) -> None:
    comparison = Comparison()
    truth = {"T1": TrackView((Seen("t", 10.0, 30.0, "TE33A-2257"),))}
    comparison.add(facility, truth, {"T1": TrackView((Seen("L1", 10.0, 31.0),))})
    comparison.add(facility, truth, {"T1": TrackView((Seen("L2", 10.0, 30.0, "TE33A-2251"),))})  # a switch
    # Unknown stretches are left out of the agreement, not counted as disagreement.
    comparison.add(facility, truth, {"T1": TrackView((), unknown=((0.0, 70.0),))})
    summary = comparison.summary()
    assert summary["instants"] == 3 and summary["matched"] == 2 and summary["id_switches"] == 1
    assert summary["numbers_compared"] == 1 and summary["number_differences"] == 1  # L1 had no number yet
    assert summary["end_error_median_m"] == 0.0 and summary["end_error_p95_m"] == pytest.approx(0.85)
    # One metre of T1 disagrees in the first instant, out of everything watched and known in all three.
    compared = summary["compared_track_m"]
    assert compared is not None and 0 < compared < sum(t.length_m for t in facility.tracks.values())
    assert summary["occupancy_agreement"] == pytest.approx(1 - 1.0 / (3 * compared), abs=1e-3)


def test_series_and_numbers_are_compared_where_both_views_recognised_them(facility: Facility) -> None:
    comparison = Comparison()
    prod = {"T1": TrackView((Seen("L1", 10.0, 30.0, "TE33A-2257", "TE33A"),))}
    comparison.add(facility, prod, {"T1": TrackView((Seen("L2", 10.0, 30.0, "TE33A-2257", "2TE116"),))})
    comparison.add(facility, prod, {"T1": TrackView((Seen("L2", 10.0, 30.0, None, "TE33A"),))})
    comparison.add(facility, prod, {"T1": TrackView((Seen("L2", 10.0, 30.0),))})  # nothing recognised
    summary = comparison.summary()
    assert (summary["series_compared"], summary["series_differences"]) == (2, 1)
    assert (summary["numbers_compared"], summary["number_differences"]) == (1, 0)
