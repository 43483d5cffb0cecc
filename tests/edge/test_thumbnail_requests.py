"""A thumbnail the cloud asks for: sent at the next sight of the locomotive, within the node's limits."""

from __future__ import annotations

from edge.config import ThumbnailConfig
from edge.thumbnails import REQUEST_TTL_S, ThumbnailMaker
from shared.layout import Facility
from shared.messages import LocoExtent


def _extent(start_m: float, end_m: float) -> LocoExtent:
    return LocoExtent(
        start_m=start_m, end_m=end_m, start_beyond_view=False, end_beyond_view=False, confidence=0.9
    )


def test_a_requested_thumbnail_comes_before_the_refresh_but_not_before_the_minimum_interval(
    facility: Facility,
) -> None:
    maker = ThumbnailMaker(
        facility.cameras_of_node("edge-bay1"), ThumbnailConfig(refresh_s=300, min_interval_s=20)
    )
    standing, other = _extent(5.0, 12.0), _extent(20.0, 25.0)
    assert maker.due("T1-C1", standing, 0.0) and maker.due("T1-C1", other, 0.0)
    assert not maker.due("T1-C1", standing, 30.0), "a standing locomotive waits for the refresh"
    maker.request("T1-C1", 4.0, 9.0, now=30.0)
    assert not maker.due("T1-C1", other, 31.0), "a request is for the locomotive it names"
    assert maker.due("T1-C1", standing, 31.0)
    assert not maker.due("T1-C1", standing, 40.0), "one request, one thumbnail"
    maker.request("T1-C1", 4.0, 9.0, now=41.0)
    assert not maker.due("T1-C1", standing, 42.0), "never more often than min_interval_s"
    assert maker.due("T1-C1", standing, 52.0)


def test_a_request_that_finds_no_locomotive_lapses(facility: Facility) -> None:
    maker = ThumbnailMaker(
        facility.cameras_of_node("edge-bay1"), ThumbnailConfig(refresh_s=300, min_interval_s=20)
    )
    standing = _extent(5.0, 12.0)
    assert maker.due("T1-C1", standing, 0.0)
    maker.request("T1-C1", 4.0, 9.0, now=30.0)
    assert not maker.due("T1-C1", standing, 30.0 + REQUEST_TTL_S + 1)
