"""Camera placements drawn from the depot envelope: surveyable cameras whose calibration gives back
the mounting they were placed at, the same for a seed, and the example depot generated from them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml

from shared.layout import parse_facility
from shared.mounting import mounting_of
from sim.neighbours import neighbours_of
from sim.placement import (
    DEPOT_ENVELOPE,
    Placement,
    camera_entry,
    draw_placements,
    neighbour_tracks,
    placement_layout,
)
from tests.conftest import EXAMPLE_LAYOUT, REPO


def test_drawn_placements_lie_in_the_envelope_and_calibrate_back_to_their_mounting() -> None:
    drawn = draw_placements(DEPOT_ENVELOPE, 16, seed=7)
    assert len(drawn) == 16
    sides = set()
    for placement, entry in drawn:
        (camera_id,) = entry
        camera = parse_facility(placement_layout(entry)).cameras[camera_id]
        mounting = mounting_of(camera)
        assert DEPOT_ENVELOPE.outside(mounting) == [], (placement, mounting)
        assert mounting.height_m == pytest.approx(placement.height_m, abs=0.05)
        assert mounting.lateral_m == pytest.approx(placement.lateral_m, abs=0.05)
        assert mounting.roll_deg == pytest.approx(placement.roll_deg, abs=0.1)
        sides.add(mounting.lateral_m > 0)
    assert sides == {True, False}


def test_a_seed_draws_the_same_placements_and_another_seed_others() -> None:
    first = draw_placements(DEPOT_ENVELOPE, 4, seed=11)
    assert draw_placements(DEPOT_ENVELOPE, 4, seed=11) == first
    assert [p for p, _ in draw_placements(DEPOT_ENVELOPE, 4, seed=12)] != [p for p, _ in first]


def test_a_camera_that_sees_too_little_of_the_track_is_not_surveyable() -> None:
    looking_away = Placement(along_m=5.0, height_m=10.0, lateral_m=-6.0, hfov_deg=40.0, aim_ahead_m=-200.0)
    assert camera_entry("X", "T1", "edge-bay1", looking_away, 70.0) is None


def test_the_example_depot_is_what_make_facility_builds_from_its_placements() -> None:
    spec = importlib.util.spec_from_file_location("make_facility", REPO / "examples" / "make_facility.py")
    assert spec is not None and spec.loader is not None
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    assert make.build() == yaml.safe_load(EXAMPLE_LAYOUT.read_text())


# Placements seed 5 drew before parallel tracks were drawn for them (along, height, lateral, lens,
# aim, roll): the neighbours come from a generator of their own, so that these stay what they were.
SEED_5_MOUNTINGS = [
    (19.99732242564, 9.45, 4.3, 73.0, 1.86, -3.05),
    (7.3476809250573805, 5.05, 5.37, 64.1, 7.72, -1.66),
    (12.295660232434958, 7.4, -12.48, 82.2, 19.68, -0.58),
    (6.690784538111258, 7.8, 3.44, 55.8, 4.21, -2.88),
    (14.887541031391294, 14.19, -4.69, 63.6, 11.9, 1.29),
    (13.11570390572108, 10.42, -10.64, 66.2, 19.57, -4.71),
]
NEIGHBOUR_SPACING_M = (5.0, 6.5)


def _mounting(p: Placement) -> tuple[float, ...]:
    return (p.along_m, p.height_m, p.lateral_m, p.hfov_deg, p.aim_ahead_m, p.roll_deg)


def _check_neighbours(lateral_m: float, neighbours_m: tuple[float, ...]) -> None:
    """Parallel tracks are 5–6.5 m apart beyond the camera's own track, or behind the camera."""
    side = 1.0 if lateral_m > 0 else -1.0
    far = sorted(-side * n for n in neighbours_m if side * n < 0)
    behind = [side * n for n in neighbours_m if side * n > 0]
    assert len(far) + len(behind) == len(neighbours_m), neighbours_m
    assert len(far) <= 2 and len(behind) <= 1, neighbours_m
    if far:
        low, high = NEIGHBOUR_SPACING_M
        assert low <= far[0] <= high, neighbours_m
        if len(far) == 2:
            assert far[1] == pytest.approx(2 * far[0], abs=0.011), neighbours_m
    # A track between the camera and its own would hide it; one behind the camera's column does not.
    for n in behind:
        assert n > abs(lateral_m), (lateral_m, neighbours_m)


def test_neighbouring_tracks_lie_beyond_the_own_track_or_behind_the_camera() -> None:
    kinds = {"none": 0, "one beyond": 0, "two beyond": 0, "behind": 0}
    for i in range(400):
        lateral = (-1) ** i * (2.0 + 13.0 * i / 400)
        tracks = neighbour_tracks(lateral, np.random.default_rng([i, 99]))
        _check_neighbours(lateral, tracks)
        beyond = sum(1 for n in tracks if n * lateral < 0)
        kinds["none"] += not tracks
        kinds["one beyond"] += beyond == 1
        kinds["two beyond"] += beyond == 2
        kinds["behind"] += any(n * lateral > 0 for n in tracks)
    # Every arrangement is drawn, and most cameras have a track beyond their own.
    assert min(kinds.values()) >= 10, kinds
    assert kinds["one beyond"] + kinds["two beyond"] >= 300, kinds


def test_drawn_placements_keep_their_mountings_and_get_neighbours() -> None:
    drawn = draw_placements(DEPOT_ENVELOPE, 6, seed=5)
    assert [_mounting(p) for p, _ in drawn] == SEED_5_MOUNTINGS
    many = draw_placements(DEPOT_ENVELOPE, 24, seed=7)
    assert many == draw_placements(DEPOT_ENVELOPE, 24, seed=7)
    for placement, _ in many:
        _check_neighbours(placement.lateral_m, placement.neighbours_m)
    assert sum(1 for p, _ in many if p.neighbours_m) >= 18


def test_a_placement_layout_holds_its_neighbouring_tracks_with_stations() -> None:
    _, entry = draw_placements(DEPOT_ENVELOPE, 1, seed=5)[0]
    offsets = (6.0, -5.5, 11.0)
    facility = parse_facility(placement_layout(entry, 60.0, offsets))
    assert sorted(facility.tracks) == ["N1", "N2", "N3", "T1"]
    for track_id, offset in zip(["T1", "N1", "N2", "N3"], (0.0, *offsets), strict=True):
        track = facility.tracks[track_id]
        assert track.length_m == 60.0
        assert track.polyline == [(0.0, offset), (60.0, offset)]
        stations = facility.stations_on_track(track_id)
        assert sorted(stations) == [f"{track_id}-A", f"{track_id}-B"]
    # The renderer and the ground truth find them where the layout puts them.
    assert [(n.track_id, n.offset_m, n.zero_at_m) for n in neighbours_of(facility, "T1")] == [
        ("N1", 6.0, 0.0),
        ("N2", -5.5, 0.0),
        ("N3", 11.0, 0.0),
    ]
    (camera_id,) = entry
    assert list(facility.cameras) == [camera_id]
    assert facility.cameras[camera_id].track == "T1"
    assert placement_layout(entry) == placement_layout(entry, 70.0, ())
    assert sorted(parse_facility(placement_layout(entry)).tracks) == ["T1"]
