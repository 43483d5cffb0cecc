"""The LPE's mounting envelope: a camera's mounting recovered from its calibration, and the cameras
mounted outside the model's envelope named by `layout check` and `edge check`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from edge.config import LpeConfig
from shared.envelope import load_envelope, mounting_warnings
from shared.errors import ConfigError
from shared.layout import load_facility, parse_facility
from shared.mounting import Mounting, mounting_of
from sim.placement import DEPOT_ENVELOPE
from tests.conftest import EXAMPLE_LAYOUT, REPO

SHIPPED = LpeConfig().model_dir


def _make_facility() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_facility", REPO / "examples" / "make_facility.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layout_with(**placements: tuple[float, float, float]) -> dict[str, Any]:
    """The example layout with T1's cameras (by index) placed at (height, lateral, hfov)."""
    data = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    make = _make_facility()
    for name, (height, lateral, hfov) in placements.items():
        index = int(name.removeprefix("c")) - 1
        data["cameras"].update(make.camera_entry("T1", "edge-bay1", index, height, lateral, hfov))
    return data


@pytest.mark.parametrize(
    ("height", "lateral", "hfov"), [(8.0, -6.0, 60.0), (4.5, -3.0, 90.0), (12.0, 9.0, 40.0)]
)
def test_the_mounting_is_recovered_from_the_calibration(height: float, lateral: float, hfov: float) -> None:
    facility = parse_facility(_layout_with(c2=(height, lateral, hfov)))
    mounting = mounting_of(facility.cameras["T1-C2"])
    assert mounting.height_m == pytest.approx(height, abs=0.05)
    assert mounting.lateral_m == pytest.approx(lateral, abs=0.05)
    assert mounting.hfov_deg == hfov
    assert mounting.roll_deg == pytest.approx(0.0, abs=0.1)  # make_facility's cameras are level


def test_the_example_depot_lies_in_the_shipped_models_envelope() -> None:
    envelope = load_envelope(SHIPPED)
    assert envelope is not None
    assert mounting_warnings(load_facility(EXAMPLE_LAYOUT), envelope) == []


def test_each_quantity_out_of_range_is_named() -> None:
    envelope = DEPOT_ENVELOPE  # 3–15 m, 2–15 m either side, 35–100°, at least 5 m, ±5°
    inside = Mounting(height_m=3, lateral_m=-15, hfov_deg=100, view_m=5, roll_deg=-5)
    assert envelope.outside(inside) == []
    outside = Mounting(height_m=2.9, lateral_m=15.1, hfov_deg=34, view_m=4.9, roll_deg=5.1)
    assert envelope.outside(outside) == [
        "height 2.9 m (measured 3–15 m)",
        "lateral distance 15.1 m (measured 2–15 m)",
        "field of view 34° (measured 35–100°)",
        "view of 4.9 m of track (measured from 5 m)",
        "roll 5.1° (measured within ±5°)",
    ]
    one_side = envelope.model_copy(update={"sides": ["right"]})
    assert one_side.outside(Mounting(8, 6, 60, 14, 0)) == ["left of the track (measured on the right only)"]
    assert one_side.outside(Mounting(8, -6, 60, 14, 0)) == []


def test_layout_check_names_each_camera_mounted_outside(tmp_path: Path) -> None:
    layout = tmp_path / "facility.yaml"
    layout.write_text(yaml.safe_dump(_layout_with(c2=(16.0, -6.0, 60.0), c3=(8.0, 6.0, 30.0))))
    result = CliRunner().invoke(app, ["layout", "check", str(layout)])
    assert result.exit_code == 0, result.output  # a warning: the layout itself is valid
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: camera")]
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith("warning: camera T1-C2: mounted outside the LPE's envelope: height 16 m")
    assert warnings[1].startswith(
        "warning: camera T1-C3: mounted outside the LPE's envelope: field of view 30°"
    )
    assert "layout is valid" in result.stdout


def test_edge_check_names_the_nodes_cameras_mounted_outside(tmp_path: Path) -> None:
    layout = tmp_path / "facility.yaml"
    layout.write_text(yaml.safe_dump(_layout_with(c2=(2.5, -6.0, 60.0))))
    config = yaml.safe_load((REPO / "examples" / "edge.yaml").read_text())
    config["layout"] = str(layout)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["edge", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: camera T1-C2: mounted outside the LPE's envelope: height 2.5 m" in result.stderr


def test_a_malformed_envelope_fails_naming_its_key(tmp_path: Path) -> None:
    (tmp_path / "envelope.yaml").write_text("measured_on: x\nheight_m: {low: 9, high: 3}\n")
    with pytest.raises(ConfigError) as failure:
        load_envelope(tmp_path)
    assert "height_m" in str(failure.value)
    assert load_envelope(tmp_path / "none") is None
