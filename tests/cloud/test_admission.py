"""What the layout and the clock let a message say (pure logic), and which detections count once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from cloud.admission import Refused, admit_detection, camera_of, known_node, not_ahead
from cloud.dedupe import Seen, SeenSeqs
from shared.layout import Facility
from shared.messages import TrackSpan
from tests import factories

SKEW = timedelta(seconds=120)
NOW = factories.NOW


def test_a_detection_inside_its_cameras_view_is_taken_as_it_is(facility: Facility) -> None:
    d = factories.detection_for(facility, "T1-C2", extents=[factories.extent(14.0, 22.0)])
    assert admit_detection(facility, d, NOW, SKEW) is d


def test_view_and_extents_are_clipped_to_what_the_layout_says_the_camera_sees(facility: Facility) -> None:
    view = facility.cameras["T1-C2"].view  # 13.4-27.3 m
    d = factories.detection_for(
        facility,
        "T1-C2",
        view=TrackSpan(start_m=0.0, end_m=70.0),
        extents=[factories.extent(0.0, 20.0), factories.extent(24.0, 27.6)],
    )
    admitted = admit_detection(facility, d, NOW, SKEW)
    assert (admitted.view.start_m, admitted.view.end_m) == (view.start_m, view.end_m)
    wide, near = admitted.extents
    assert (wide.start_m, wide.end_m, wide.start_beyond_view, wide.end_beyond_view) == (
        view.start_m,
        20.0,
        True,
        False,
    )
    # 0.3 m past the border is within the slack: rounding, so the end counts as seen at the border.
    assert (near.start_m, near.end_m, near.end_beyond_view) == (24.0, view.end_m, False)


def test_a_sliver_past_the_border_within_the_slack_is_dropped(facility: Facility) -> None:
    d = factories.detection_for(
        facility, "T1-C2", view=TrackSpan(start_m=13.0, end_m=27.3), extents=[factories.extent(13.0, 13.3)]
    )
    assert admit_detection(facility, d, NOW, SKEW).extents == []


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"node_id": "edge-bay2"}, "belongs to node edge-bay1 in the layout, not to edge-bay2"),
        ({"track_id": "T2"}, "watches track T1 in the layout, not T2"),
        ({"camera_id": "T1-C9"}, "camera 'T1-C9' is not in the layout"),
        ({"view": TrackSpan(start_m=40.0, end_m=60.0), "extents": []}, "misses camera T1-C2's 13.4-27.3 m"),
        (
            {"view": TrackSpan(start_m=0.0, end_m=70.0), "extents": [factories.extent(40.0, 45.0)]},
            "extents.0 40-45 m lies outside what camera T1-C2 sees",
        ),
        ({"captured_at": NOW + timedelta(seconds=121)}, r"121 s ahead of this clock \(at most 120 s allowed"),
    ],
)
def test_what_the_layout_does_not_allow_is_refused_with_the_reason(
    facility: Facility, overrides: dict[str, object], reason: str
) -> None:
    d = factories.detection_for(facility, "T1-C2").model_copy(update=overrides)
    with pytest.raises(Refused, match=reason):
        admit_detection(facility, d, NOW, SKEW)


def test_nodes_and_cameras_are_checked_against_the_layout(facility: Facility) -> None:
    known_node(facility, "edge-bay1")
    with pytest.raises(Refused, match="node 'edge-x' is not in the layout"):
        known_node(facility, "edge-x")
    assert camera_of(facility, "edge-bay1", "T1-C2").track == "T1"
    with pytest.raises(Refused, match="belongs to node edge-bay1"):
        camera_of(facility, "edge-bay2", "T1-C2")
    not_ahead(NOW + SKEW, NOW, SKEW, "at")  # exactly the allowed skew is fine
    not_ahead(NOW - timedelta(days=365), NOW, SKEW, "at")  # the past is a backlog, not an error


def test_a_number_counts_once_and_a_reused_one_is_a_conflict() -> None:
    seen = SeenSeqs(per_node=3)
    first, other = uuid.uuid4(), uuid.uuid4()
    assert seen.check("prod", "edge-bay1", 7, first) is Seen.NEW
    assert seen.check("prod", "edge-bay1", 7, first) is Seen.AGAIN
    assert seen.check("prod", "edge-bay1", 7, other) is Seen.CONFLICT
    assert seen.first("prod", "edge-bay1", 7) == first
    # Each flow and node numbers its own detections.
    assert seen.check("dev", "edge-bay1", 7, other) is Seen.NEW
    assert seen.check("prod", "edge-bay2", 7, other) is Seen.NEW
    for seq in (8, 9, 10):  # the oldest is forgotten beyond `per_node`
        seen.check("prod", "edge-bay1", seq, uuid.uuid4())
    assert seen.first("prod", "edge-bay1", 7) is None
