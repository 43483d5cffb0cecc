"""Parallel tracks beside a camera's own: which tracks count, where they lie in its track frame, and
what of their traffic the ground truth says the camera sees (and must not report as its track's)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import yaml

from shared.layout import Facility, parse_facility
from sim.fleet import make_fleet
from sim.neighbours import Neighbour, neighbours_of
from sim.placement import Placement, camera_entry, placement_layout
from sim.scenario import Scenario
from sim.truth import neighbour_extents, visible_extents
from sim.world import LocoState, World
from tests.conftest import EXAMPLE_LAYOUT

TRACK_M = 70.0
# A camera on the right of its track (negative lateral) with a track 6 m beyond it, on the far side.
RIGHT_CAMERA = Placement(along_m=5.0, height_m=6.0, lateral_m=-6.0, hfov_deg=70.0, aim_ahead_m=12.0)
NEIGHBOUR_M = 6.0


def _example_with(tracks: dict[str, list[list[float]]]) -> Facility:
    """The example depot with some tracks' polylines replaced (length_m follows the polyline)."""
    doc = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    for track_id, polyline in tracks.items():
        pts = np.asarray(polyline, dtype=np.float64)
        doc["tracks"][track_id]["polyline"] = polyline
        doc["tracks"][track_id]["length_m"] = round(
            float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()), 3
        )
    return parse_facility(doc)


def _loco_state(start_m: float, end_m: float, reversed: bool = False) -> LocoState:
    (loco,) = make_fleet(np.random.default_rng(1), 1)
    return LocoState(loco, "T2", start_m, end_m, moving=False, reversed=reversed)


def test_example_bay_sees_the_two_bays_within_reach_and_not_the_third(facility: Facility) -> None:
    assert neighbours_of(facility, "T1") == [
        Neighbour("T2", 12.0, 0.0, same_direction=True),
        Neighbour("T3", 24.0, 0.0, same_direction=True),
    ]
    # From bay 2, bay 1 lies on the other side (negative: to the right facing increasing metres).
    assert [(n.track_id, n.offset_m) for n in neighbours_of(facility, "T2")] == [
        ("T1", -12.0),
        ("T3", 12.0),
        ("T4", 24.0),
    ]


@pytest.mark.parametrize(
    "polyline",
    [
        # Bent half way, its ends parallel to bay 1 and 12 m from it.
        [[0.0, 12.0], [35.0, 13.0], [70.0, 12.0]],
        [[0.0, 12.0], [70.0, 15.0]],  # straight, but 2.5° off parallel
    ],
    ids=["bent", "not-parallel"],
)
def test_a_bent_or_skewed_track_is_no_neighbour(polyline: list[list[float]]) -> None:
    facility = _example_with({"T2": polyline})
    assert [n.track_id for n in neighbours_of(facility, "T1")] == ["T3"]


def test_a_bent_own_track_has_no_neighbours() -> None:
    facility = _example_with({"T2": [[0.0, 12.0], [35.0, 13.0], [70.0, 12.0]]})
    assert neighbours_of(facility, "T2") == []


def test_a_track_running_the_other_way_turns_metres_and_direction() -> None:
    facility = _example_with({"T2": [[70.0, 12.0], [0.0, 12.0]]})
    (bay2, _) = neighbours_of(facility, "T1")
    assert bay2 == Neighbour("T2", 12.0, 70.0, same_direction=False)
    own = bay2.to_own(_loco_state(10.0, 30.0))
    # Bay 2's metre 10 lies at bay 1's metre 60: the locomotive spans 40–60 and faces the other way.
    assert (own.start_m, own.end_m, own.reversed) == (40.0, 60.0, True)
    assert own.loco == _loco_state(10.0, 30.0).loco
    assert bay2.to_own(_loco_state(10.0, 30.0, reversed=True)).reversed is False


def test_a_track_starting_further_along_shifts_metres() -> None:
    facility = _example_with({"T2": [[5.0, 12.0], [75.0, 12.0]]})
    (bay2, _) = neighbours_of(facility, "T1")
    assert bay2 == Neighbour("T2", 12.0, 5.0, same_direction=True)
    own = bay2.to_own(_loco_state(10.0, 30.0))
    assert (own.start_m, own.end_m, own.reversed) == (15.0, 35.0, False)


def _layout(reverse_neighbour: bool) -> dict[str, Any]:
    entry = camera_entry("CAM", "T1", "edge-bay1", RIGHT_CAMERA, TRACK_M)
    assert entry is not None
    doc = copy.deepcopy(placement_layout(entry, TRACK_M, (NEIGHBOUR_M,)))
    if reverse_neighbour:
        doc["tracks"]["N1"]["polyline"] = [[TRACK_M, NEIGHBOUR_M], [0.0, NEIGHBOUR_M]]
    return doc


@pytest.mark.parametrize("reverse_neighbour", [False, True], ids=["same-way", "other-way"])
def test_neighbour_extents_are_in_own_track_metres_and_not_own_truth(reverse_neighbour: bool) -> None:
    facility = parse_facility(_layout(reverse_neighbour))
    view = facility.cameras["CAM"].view
    world = World(facility, Scenario(seed=3, horizon_h=12))
    neighbours = neighbours_of(facility, "T1")
    assert [n.track_id for n in neighbours] == ["N1"]
    alone = both = 0
    for t in np.arange(0.0, 12 * 3600, 120.0):
        # Where the neighbour's locomotives lie in own-track metres, worked out here from the layout.
        spans = [
            (TRACK_M - s.end_m, TRACK_M - s.start_m) if reverse_neighbour else (s.start_m, s.end_m)
            for s in world.locos_at(t, "N1")
        ]
        seen = sorted(
            (max(a, view.start_m), min(b, view.end_m))
            for a, b in spans
            if a < view.end_m and b > view.start_m
        )
        if not seen:
            continue
        extents = neighbour_extents(facility, "CAM", neighbours, world, t)
        assert [m for e in extents for m in (e.start_m, e.end_m)] == pytest.approx(
            [m for span in seen for m in span]
        ), t
        assert {e.plate for e in extents} <= {s.loco.plate for s in world.locos_at(t, "N1")}
        # The own track's truth, given every locomotive in the depot, holds only its own track's.
        own = visible_extents(facility, "CAM", world.locos_at(t))
        assert own == visible_extents(facility, "CAM", world.locos_at(t, "T1"))
        assert not {e.plate for e in own} & {e.plate for e in extents}
        alone += not own
        both += bool(own)
    assert alone >= 10
    assert both >= 10
