"""What the simulator's truth says a camera sees of a locomotive: an end is visible only inside the
camera's seen columns (shared.strip.SEEN_SHARE), where the strip still shows a locomotive's side."""

from __future__ import annotations

import pytest

from shared.layout import Facility
from shared.strip import StripGeometry
from sim.fleet import SERIES, Locomotive
from sim.truth import visible_extents
from sim.world import LocoState

CAMERA = "T1-C1"


def _loco(start_m: float, end_m: float) -> LocoState:
    return LocoState(Locomotive(SERIES["TEM2"], "0001"), "T1", start_m, end_m, moving=False, reversed=False)


@pytest.fixture(scope="module")
def seen(facility: Facility) -> tuple[float, float]:
    lo, hi = StripGeometry.for_camera(CAMERA, facility.cameras[CAMERA]).seen_m
    view = facility.cameras[CAMERA].view
    # The example's cameras see the locomotive's side over less than the centreline's view.
    assert view.start_m + 0.3 < lo < hi < view.end_m - 0.3
    return lo, hi


def test_an_end_inside_the_seen_stretch_is_visible_where_it_is(facility: Facility, seen) -> None:
    lo, hi = seen
    [extent] = visible_extents(facility, CAMERA, [_loco(lo + 1.0, hi - 1.0)])
    assert (extent.start_m, extent.end_m) == (lo + 1.0, hi - 1.0)
    assert not extent.start_beyond_view and not extent.end_beyond_view


def test_an_end_between_the_seen_stretch_and_the_view_border_is_beyond_view(facility: Facility, seen) -> None:
    lo, hi = seen
    [extent] = visible_extents(facility, CAMERA, [_loco(lo - 0.2, hi + 0.2)])
    assert extent.start_beyond_view and extent.end_beyond_view
    assert (extent.start_m, extent.end_m) == (lo, hi)


def test_a_locomotive_only_in_the_unseen_part_of_the_view_is_not_seen(facility: Facility, seen) -> None:
    _, hi = seen
    assert visible_extents(facility, CAMERA, [_loco(hi + 0.1, hi + 20.0)]) == []
    [extent] = visible_extents(facility, CAMERA, [_loco(hi - 0.1, hi + 20.0)])
    assert extent.end_beyond_view and not extent.start_beyond_view
