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


# What follows pins each check of the fit, its messages and the image-interval bounds exactly, so that
# `make mutate MODULE=calibration` (docs/testing.md) finds no small change to shared/calibration.py
# that the tests let through.

# A plausible projective map from track (metres, offset) to pixels, with depth w > 0 near the track.
H_TRUE = np.array([[20.0, 5.0, 300.0], [1.0, -40.0, 500.0], [0.001, 0.0005, 1.0]])


def _project(h: np.ndarray, track: np.ndarray) -> np.ndarray:
    homogeneous = np.hstack([track, np.ones((len(track), 1))]) @ h.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def _refusal(pixels: np.ndarray, track: np.ndarray) -> str:
    with pytest.raises(CalibrationError) as caught:
        TrackCalibration.fit(pixels, track)
    return str(caught.value)


def test_each_refusal_says_exactly_what_is_wrong() -> None:
    track = np.array([[0, -0.76], [0, 0.76], [10, -0.76], [10, 0.76]])
    pixels = _project(H_TRUE, track)
    assert _refusal(pixels, track[:3]) == "image and track point lists differ in length"
    assert _refusal(pixels[:3], track[:3]) == "3 point(s) given, at least 4 are needed to fit a homography"
    assert _refusal(pixels, track * [1, 0]) == (
        "the track points lie on one line; survey points on both rails (offsets ≈ ±0.76 m)"
    )
    degenerate = "the points do not determine a homography (degenerate configuration)"
    assert _refusal(np.zeros((4, 2)), track) == degenerate  # no homography at all
    assert _refusal(np.array([[0, 0], [1, 1], [2, 2], [3, 3.0]]), track) == degenerate  # a singular one
    assert _refusal(np.where(pixels == pixels[1, 1], np.nan, pixels), track) == degenerate  # not finite


def test_points_on_both_sides_of_the_horizon_are_refused() -> None:
    """Depth w = 1 + 0.1 s: the points at -20 and -15 m lie behind the camera, the others in front."""
    track = np.array([[s, d] for s in (-20.0, -15.0, 5.0, 10.0) for d in (-1.0, 1.0)])
    fold = np.array([[20.0, 0.0, 300.0], [0.0, 40.0, 500.0], [0.1, 0.0, 1.0]])
    assert (
        _refusal(_project(fold, track), track) == "the points fold over the horizon; some cannot be visible"
    )


def _spread_ok(track: list[tuple[float, float]]) -> bool:
    points = np.array(track)
    try:
        TrackCalibration.fit(_project(H_TRUE, points), points)
    except CalibrationError as exc:
        assert "one line" in str(exc)
        return False
    return True


def test_the_survey_must_span_half_a_square_metre_between_some_three_points() -> None:
    assert _spread_ok([(100, 5), (101, 5), (100, 6), (101, 6)])  # exactly 0.5 m²
    assert not _spread_ok([(100, 5), (101, 5), (100.3, 5.9), (101.3, 5.9)])  # 0.45 m²
    # Only the triangle of the 2nd, 3rd and 4th points spans 0.54 m²; the others 0.50 m² or less.
    assert _spread_ok([(0, 0), (0, 0.099), (9, -0.099), (10, 0)])


def test_the_fit_reports_its_reprojection_error_per_point() -> None:
    track = np.array([[s, d] for s in (0.0, 5.0, 10.0) for d in (-0.76, 0.76)])
    noise = np.array([[0.5, -0.3], [-0.2, 0.1], [0.0, 0.4], [0.3, 0.3], [-0.6, 0.0], [0.1, -0.5]])
    pixels = _project(H_TRUE, track) + noise
    model = TrackCalibration.fit(pixels, track)
    errors = np.linalg.norm(model.to_image(track) - pixels, axis=1)
    assert errors.min() > 0.01
    assert model.rms_error_px == pytest.approx(float(np.sqrt(np.mean(errors**2))))
    assert model.max_error_px == pytest.approx(float(errors.max()))


def test_the_homography_is_stored_scaled_to_a_largest_entry_of_one_with_its_inverse() -> None:
    track = np.array([[s, d] for s in (0.0, 10.0) for d in (-0.76, 0.76)])
    model = TrackCalibration.fit(_project(-3 * H_TRUE, track), track)
    assert np.abs(model.track_to_image_h).max() == pytest.approx(1.0)
    assert (model.track_to_image_h[2, 2] > 0) and model.in_front(track).all()
    assert model.image_to_track_h @ model.track_to_image_h == pytest.approx(np.eye(3))


def test_any_invertible_mapping_fits_whatever_its_scale() -> None:
    """The degeneracy check is about rank, not size: half a pixel per metre still fits exactly."""
    track = np.array([[s, d] for s in (0.0, 10.0) for d in (-0.76, 0.76)])
    model = TrackCalibration.fit(0.5 * track + [100.0, 200.0], track)
    assert model.max_error_px < 1e-4
    assert model.to_track(np.array([[105.0, 200.0]])) == pytest.approx(np.array([[10.0, 0.0]]), abs=1e-4)


# Hand-made calibrations whose pixels are exact in binary: u = 4 s, v = 4 d + 512 (the centreline
# crosses a 1280×720 image along its width); and u = 4 d + 512, v = 4 s (down its height).
ALONG_WIDTH = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 512.0], [0.0, 0.0, 1.0]])
ALONG_HEIGHT = np.array([[0.0, 4.0, 512.0], [4.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize(
    ("h", "search", "seen"),
    [
        (ALONG_WIDTH, (-10.0, 400.0), (0.0, 319.75)),  # u from 0 to 1279
        (ALONG_HEIGHT, (-10.0, 400.0), (0.0, 179.75)),  # v from 0 to 719
        (ALONG_WIDTH, (-10.0, 100.0), (0.0, 100.0)),  # the search ends inside the image: its end
        (ALONG_WIDTH, (400.0, 500.0), None),
    ],
)
def test_the_rail_interval_runs_from_the_first_to_the_last_pixel_inside_the_image(
    h: np.ndarray, search: tuple[float, float], seen: tuple[float, float] | None
) -> None:
    model = TrackCalibration(h, np.linalg.inv(h), 0.0, 0.0)
    assert model.rail_interval_in_image(1280, 720, *search, step_m=0.25) == seen
