"""`depotwatch calibrate fit`: surveyed points fitted as the layout loader fits them, each point's
residual, the loader's verdict, an overlay over the snapshot, and the layout written only when
accepted. The snapshot is a simulated camera's frame; its true rail marks are the example layout's."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from shared.calibration_check import check_points
from shared.layout import CalibrationPoint, load_facility
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from tests.conftest import EXAMPLE_LAYOUT

CAMERA = "T2-C3"


@pytest.fixture(scope="module")
def true_points() -> list[dict[str, object]]:
    """The camera's surveyed marks as a commissioning engineer writes them (rail, not offset)."""
    camera = load_facility(EXAMPLE_LAYOUT).cameras[CAMERA]
    return [
        {"image": list(p.image), "track_m": p.track_m, "rail": "left" if p.offset_m > 0 else "right"}
        for p in camera.calibration.points
    ]


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    facility = load_facility(EXAMPLE_LAYOUT)
    frame = SimCamera(facility, World(facility, Scenario(seed=3)), SimUrl(camera_id=CAMERA, realtime=False))
    image = frame.frame_at(3600.0).image
    assert image is not None
    path = tmp_path / "snap.jpg"
    cv2.imwrite(str(path), image)
    return path


def _fit(
    tmp_path: Path, snapshot: Path, points: list[dict[str, object]], *extra: str
) -> tuple[int, str, str]:
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump({"points": points}))
    result = CliRunner().invoke(
        app, ["calibrate", "fit", "--image", str(snapshot), "--points", str(path), "--track", "T2", *extra]
    )
    return result.exit_code, result.stdout, result.stderr


def test_true_marks_are_accepted_with_an_overlay_and_written_into_the_layout(
    tmp_path: Path, snapshot: Path, true_points: list[dict[str, object]]
) -> None:
    layout = tmp_path / "facility.yaml"
    original = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    original["cameras"][CAMERA]["calibration"]["points"][0]["image"][0] += 1.5  # an earlier survey
    layout.write_text(yaml.safe_dump(original))
    code, out, err = _fit(
        tmp_path, snapshot, true_points, "--layout", str(layout), "--write", "--camera", CAMERA
    )
    assert code == 0, out + err
    assert "accepted: worst residual 0." in out
    overlay = cv2.imread(str(tmp_path / "snap.overlay.png"))
    assert overlay is not None and overlay.shape == cv2.imread(str(snapshot)).shape
    assert np.abs(overlay.astype(int) - cv2.imread(str(snapshot)).astype(int)).sum() > 0  # drawn on
    written = load_facility(layout).cameras[CAMERA]
    assert [p.image for p in written.calibration.points] == [tuple(p["image"]) for p in true_points]
    shipped = load_facility(EXAMPLE_LAYOUT).cameras[CAMERA]
    # Every metre of the view maps to the same pixel as the shipped (true) calibration.
    metres = np.arange(shipped.view.start_m, shipped.view.end_m, 1.0)
    track = np.stack([metres, np.zeros_like(metres)], axis=1)
    assert (
        np.abs(written.calibration.model.to_image(track) - shipped.calibration.model.to_image(track)).max()
        < 0.5
    )
    assert written.view.start_m == pytest.approx(shipped.view.start_m, abs=0.2)
    assert (tmp_path / "facility.yaml.previous").is_file()


def test_a_mark_a_metre_off_is_refused_and_named_and_nothing_is_written(
    tmp_path: Path, snapshot: Path, true_points: list[dict[str, object]]
) -> None:
    layout = tmp_path / "facility.yaml"
    layout.write_text(EXAMPLE_LAYOUT.read_text())
    points = [dict(p) for p in true_points]
    points[4]["track_m"] = float(points[4]["track_m"]) + 1.0  # type: ignore[arg-type]
    code, _, err = _fit(tmp_path, snapshot, points, "--layout", str(layout), "--write", "--camera", CAMERA)
    assert code == 1
    assert "refused: points disagree with one another" in err
    assert "point 4 disagrees with the others: fitted without it, the rest agree and miss it by" in err
    assert layout.read_text() == EXAMPLE_LAYOUT.read_text()
    assert not (tmp_path / "snap.overlay.png").exists()


def test_points_on_one_rail_and_too_few_points_get_the_loaders_reasons(
    tmp_path: Path, snapshot: Path, true_points: list[dict[str, object]]
) -> None:
    one_rail = [p for p in true_points if p["rail"] == "left"] + [
        {**p, "track_m": float(p["track_m"]) + 0.5, "rail": "left"}  # type: ignore[arg-type]
        for p in true_points
        if p["rail"] == "left"
    ]
    code, _, err = _fit(tmp_path, snapshot, one_rail)
    assert code == 1 and "the track points lie on one line" in err
    code, _, err = _fit(tmp_path, snapshot, true_points[:3])
    assert code == 1 and "at least 4" in err


def test_a_malformed_point_is_named_by_its_key(tmp_path: Path, snapshot: Path) -> None:
    code, _, err = _fit(tmp_path, snapshot, [{"image": [1, 2], "track_m": 3, "rail": "middle"}])
    assert code == 2 and "points.0.rail" in err


@pytest.mark.parametrize("moved", range(6))
def test_each_points_residual_on_the_floor_and_the_outlier(moved: int) -> None:
    camera = load_facility(EXAMPLE_LAYOUT).cameras[CAMERA]
    points = list(camera.calibration.points)
    report = check_points(points)
    assert report.accepted and report.outlier is None
    assert max(r.floor_cm for r in report.residuals) < 1.0
    p = points[moved]
    points[moved] = CalibrationPoint(image=p.image, track_m=p.track_m + 1.0, offset_m=p.offset_m)
    # Six marks: leaving out any one of a rail's three gives an exact fit; the lens tells which.
    report = check_points(points, lens=(1280, 720, camera.hfov_deg))
    assert not report.accepted and report.outlier == moved
    assert report.residuals[moved].floor_cm > 5
    missed = report.residuals[moved].left_out_pixels
    assert missed is not None and missed > 20
