"""Calibrating a camera over the API: a fit as the layout loader makes it (operators), and an
accepted fit saved as the camera's calibration and view through the validated layout replace
(admins); refused points save nothing and say why and which point to re-survey."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.auth import Role, create_key
from shared.layout import Facility, load_facility
from tests.cloud.test_api import Server
from tests.conftest import EXAMPLE_LAYOUT, DatabaseFactory

CAMERA = "T2-C3"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    path = tmp_path / "facility.yaml"
    shutil.copy(EXAMPLE_LAYOUT, path)
    return path


@pytest.fixture
def calibrating(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, layout: Path
) -> Iterator[Server]:
    server = Server(database_factory(), mqtt_url, facility, layout=layout)
    yield server
    server.stop()


def _points(facility: Facility, moved: int | None = None, along_m: float = 1.0) -> dict[str, object]:
    points = [p.model_dump(mode="json") for p in facility.cameras[CAMERA].calibration.points]
    if moved is not None:
        points[moved]["track_m"] += along_m
    return {"points": points}


def test_operators_fit_points_and_see_the_verdict_residuals_and_view(
    calibrating: Server, facility: Facility
) -> None:
    engine = calibrating.service.engine
    operator, viewer = create_key(engine, Role.OPERATOR), create_key(engine, Role.VIEWER)
    path = f"/api/cameras/{CAMERA}/calibration/fit"
    assert calibrating.call(path, viewer, "POST", _points(facility))[0] == 403
    status, fit = calibrating.call(path, operator, "POST", _points(facility))
    assert status == 200, fit
    assert fit["accepted"] and fit["problems"] == [] and fit["outlier"] is None
    assert max(r["pixels"] for r in fit["residuals"]) < 0.5
    view = facility.cameras[CAMERA].view
    assert fit["view"] == pytest.approx([view.start_m, view.end_m], abs=0.2)
    assert len(fit["track_to_image"]) == 3

    status, fit = calibrating.call(path, operator, "POST", _points(facility, moved=4))
    assert status == 200 and not fit["accepted"]
    assert fit["outlier"] == 4 and fit["residuals"][4]["left_out_pixels"] > 20
    assert any("points disagree with one another" in p for p in fit["problems"])
    status, fit = calibrating.call(path, operator, "POST", {"points": _points(facility)["points"][:3]})
    assert status == 200 and not fit["accepted"] and any("at least 4" in p for p in fit["problems"])
    assert (
        calibrating.call("/api/cameras/T9-C1/calibration/fit", operator, "POST", _points(facility))[0] == 404
    )


def test_admins_save_an_accepted_fit_into_the_layout_and_refused_points_save_nothing(
    calibrating: Server, facility: Facility, layout: Path
) -> None:
    engine = calibrating.service.engine
    admin, operator = create_key(engine, Role.ADMIN), create_key(engine, Role.OPERATOR)
    path = f"/api/cameras/{CAMERA}/calibration"
    resurveyed = _points(facility)
    for point in resurveyed["points"]:  # type: ignore[attr-defined]
        point["image"][0] += 1.0  # a survey a pixel to the right
    assert calibrating.call(path, operator, "PUT", resurveyed)[0] == 403

    before = layout.read_text()
    status, body = calibrating.call(path, admin, "PUT", _points(facility, moved=2))
    assert status == 422 and body["detail"]["outlier"] == 2
    assert any("points disagree" in p for p in body["detail"]["problems"])
    assert layout.read_text() == before

    status, fit = calibrating.call(path, admin, "PUT", resurveyed)
    assert status == 200 and fit["accepted"], fit
    saved = load_facility(layout).cameras[CAMERA]
    assert [list(p.image) for p in saved.calibration.points] == [p["image"] for p in resurveyed["points"]]  # type: ignore[index]
    assert (saved.view.start_m, saved.view.end_m) == tuple(fit["view"])
    assert calibrating.service.facility.cameras[CAMERA].calibration.points == saved.calibration.points
    previous = load_facility(layout.with_name("facility.yaml.previous")).cameras[CAMERA]
    assert previous.calibration.points == facility.cameras[CAMERA].calibration.points
