"""Camera placements drawn from the depot envelope: surveyable cameras whose calibration gives back
the mounting they were placed at, the same for a seed, and the example depot generated from them."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from shared.layout import parse_facility
from shared.mounting import mounting_of
from sim.placement import DEPOT_ENVELOPE, Placement, camera_entry, draw_placements, placement_layout
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
