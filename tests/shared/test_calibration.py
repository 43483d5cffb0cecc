"""Calibration maths: image ↔ track metres within 1 cm, poses recovered, degenerate input refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calibration import TrackCalibration
from shared.errors import CalibrationError
from shared.layout import Facility
from shared.projection import PinholeCamera


def _floor_grid(start: float, end: float) -> np.ndarray:
    s, d = np.meshgrid(np.linspace(start, end, 15), np.linspace(-1.6, 1.6, 7))
    return np.stack([s.ravel(), d.ravel()], axis=1)


def test_example_points_map_to_track_metres_and_back_within_1_cm(facility: Facility) -> None:
    for cid, cam in facility.cameras.items():
        model = cam.calibration.model
        track_pts = _floor_grid(cam.view.start_m, cam.view.end_m)
        pixels = model.to_image(track_pts)
        back = model.to_track(pixels)
        assert np.abs(back - track_pts).max() < 0.01, cid
        # And starting from pixels: round to whole pixels as a detector would report them.
        whole = np.round(pixels)
        assert np.abs(model.to_image(model.to_track(whole)) - whole).max() < 0.01, cid


def test_example_survey_points_agree_with_the_fit(facility: Facility) -> None:
    for cid, cam in facility.cameras.items():
        model = cam.calibration.model
        assert model.max_error_px < 0.5, cid
        for point in cam.calibration.points:
            s, d = model.to_track(np.array([point.image]))[0]
            assert (s, d) == pytest.approx((point.track_m, point.offset_m), abs=0.01), cid


def test_view_ends_lie_on_the_image_border(facility: Facility) -> None:
    for cid, cam in facility.cameras.items():
        w, h = cam.resolution
        seen = cam.calibration.model.rail_interval_in_image(w, h, -50, 150)
        assert seen is not None
        assert seen[0] == pytest.approx(cam.view.start_m, abs=0.2), cid
        assert seen[1] == pytest.approx(cam.view.end_m, abs=0.2), cid


def test_points_behind_the_camera_are_not_in_front(facility: Facility) -> None:
    cam = facility.cameras["T1-C3"]
    model = cam.calibration.model
    camera = PinholeCamera.from_calibration(model, *cam.resolution, cam.hfov_deg)
    ahead = (cam.view.start_m + cam.view.end_m) / 2
    behind_the_column = [camera.position[0], camera.position[1] - 15.0]
    assert model.in_front(np.array([[ahead, 0.0]])).all()
    assert not model.in_front(np.array([behind_the_column])).any()


def test_fit_refuses_too_few_or_collinear_points() -> None:
    pixels = np.array([[10, 10], [100, 10], [100, 100], [10, 100.0]])
    with pytest.raises(CalibrationError, match="at least 4"):
        TrackCalibration.fit(pixels[:3], np.array([[0, 0], [1, 0], [1, 1.0]]))
    with pytest.raises(CalibrationError, match="one line"):
        TrackCalibration.fit(pixels, np.array([[0, 0], [1, 0], [2, 0], [3, 0.0]]))
    with pytest.raises(CalibrationError, match="differ in length"):
        TrackCalibration.fit(pixels, np.array([[0, 0], [1, 0], [2, 1.0]]))


@settings(max_examples=60, deadline=None)
@given(
    s_cam=st.floats(0, 80),
    offset=st.floats(-9, -3) | st.floats(3, 9),
    height=st.floats(4, 12),
    ahead=st.floats(-6, 6),
    hfov=st.floats(45, 90),
)
def test_any_plausible_mounting_round_trips_and_recovers_the_pose(
    s_cam: float, offset: float, height: float, ahead: float, hfov: float
) -> None:
    truth = PinholeCamera.look_at((s_cam, offset, height), (s_cam + ahead, 0.0, 1.0), 1280, 720, hfov)
    ground = np.array([[s_cam + ahead + ds, dd] for ds in (-2.0, 0.0, 2.0) for dd in (-0.76, 0.76)])
    pixels, depth = truth.project(np.hstack([ground, np.zeros((len(ground), 1))]))
    assert (depth > 0).all()
    model = TrackCalibration.fit(pixels, ground)
    grid = _floor_grid(s_cam + ahead - 2, s_cam + ahead + 2)
    assert np.abs(model.to_track(model.to_image(grid)) - grid).max() < 0.01
    recovered = PinholeCamera.from_calibration(model, 1280, 720, hfov)
    assert np.abs(recovered.position - truth.position).max() < 0.01
    body = np.array([[s_cam + ahead, -1.6, 4.6], [s_cam + ahead + 1, 1.6, 2.0]])
    assert np.abs(recovered.project(body)[0] - truth.project(body)[0]).max() < 0.5
