"""Mapping between image pixels and track coordinates for one camera.

A camera's calibration is a set of surveyed points: a pixel and the track position it shows, as metres
along the track and a lateral offset from the track centreline (positive to the left when facing
increasing metres; the rails of 1520 mm gauge sit at about ±0.76 m). Locally the floor is a plane, so a
homography maps track coordinates to pixels exactly for points on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from shared.errors import CalibrationError

FloatArray = npt.NDArray[np.float64]

# Half of the 1520 mm gauge: the rail heads' lateral offsets are ±this.
RAIL_OFFSET_M = 0.76
# Fewer points leave the homography's 8 degrees of freedom undetermined.
MIN_POINTS = 4
# A triangle of ground points with less area than this (m²) cannot pin the plane's orientation.
MIN_GROUND_SPREAD_M2 = 0.5
# A mapped point must lie this far in front of the camera; behind it the homography folds over.
MIN_DEPTH_SCALE = 1e-9


@dataclass(frozen=True)
class TrackCalibration:
    """A fitted ground-plane homography: track (metres, offset) ↔ image (u, v)."""

    track_to_image_h: FloatArray
    image_to_track_h: FloatArray
    rms_error_px: float
    max_error_px: float

    @classmethod
    def fit(cls, image_points: FloatArray, track_points: FloatArray) -> TrackCalibration:
        """Fit from N×2 pixels and N×2 (metres along, lateral offset) points; raises CalibrationError."""
        image_points = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
        track_points = np.asarray(track_points, dtype=np.float64).reshape(-1, 2)
        if len(image_points) != len(track_points):
            raise CalibrationError("image and track point lists differ in length")
        if len(image_points) < MIN_POINTS:
            raise CalibrationError(
                f"{len(image_points)} point(s) given, at least {MIN_POINTS} are needed to fit a homography"
            )
        if _largest_triangle_area(track_points) < MIN_GROUND_SPREAD_M2:
            raise CalibrationError(
                "the track points lie on one line; survey points on both rails (offsets ≈ ±0.76 m)"
            )
        try:
            h, _ = cv2.findHomography(track_points, image_points, method=0)
        except cv2.error as exc:
            raise CalibrationError(f"homography fit failed: {exc}") from exc
        if h is None or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
            raise CalibrationError("the points do not determine a homography (degenerate configuration)")
        # Scale so that w > 0 in front of the camera: surveyed points are visible, hence in front.
        w = np.hstack([track_points, np.ones((len(track_points), 1))]) @ h[2]
        if np.all(w < 0):
            h = -h
        elif not np.all(w > 0):
            raise CalibrationError("the points fold over the horizon; some cannot be visible")
        h = h / np.abs(h).max()
        errors = np.linalg.norm(_apply(h, track_points) - image_points, axis=1)
        return cls(
            track_to_image_h=h,
            image_to_track_h=np.linalg.inv(h),
            rms_error_px=float(np.sqrt(np.mean(errors**2))),
            max_error_px=float(errors.max()),
        )

    def to_image(self, track_points: FloatArray) -> FloatArray:
        """Map N×2 (metres along, offset) to N×2 pixels."""
        return _apply(self.track_to_image_h, track_points)

    def to_track(self, image_points: FloatArray) -> FloatArray:
        """Map N×2 pixels on the floor plane to N×2 (metres along, offset)."""
        return _apply(self.image_to_track_h, image_points)

    def in_front(self, track_points: FloatArray) -> npt.NDArray[np.bool_]:
        """Whether each track point lies in front of the camera (projects without folding over)."""
        pts = np.asarray(track_points, dtype=np.float64).reshape(-1, 2)
        w = pts @ self.track_to_image_h[2, :2] + self.track_to_image_h[2, 2]
        return np.asarray(w > MIN_DEPTH_SCALE)

    def rail_interval_in_image(
        self, width: int, height: int, search_from_m: float, search_to_m: float, step_m: float = 0.05
    ) -> tuple[float, float] | None:
        """The range of track metres whose centreline point falls inside a width×height image."""
        s = np.arange(search_from_m, search_to_m + step_m / 2, step_m)
        pts = np.stack([s, np.zeros_like(s)], axis=1)
        uv = self.to_image(pts)
        inside = (
            self.in_front(pts)
            & (uv[:, 0] >= 0)
            & (uv[:, 0] <= width - 1)
            & (uv[:, 1] >= 0)
            & (uv[:, 1] <= height - 1)
        )
        if not inside.any():
            return None
        idx = np.flatnonzero(inside)
        return float(s[idx[0]]), float(s[idx[-1]])


def _apply(h: FloatArray, points: FloatArray) -> FloatArray:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    homogeneous = np.hstack([pts, np.ones((len(pts), 1))]) @ h.T
    return np.asarray(homogeneous[:, :2] / homogeneous[:, 2:3])


def _largest_triangle_area(points: FloatArray) -> float:
    best = 0.0
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            for k in range(j + 1, n):
                (x1, y1), (x2, y2), (x3, y3) = points[i], points[j], points[k]
                best = max(best, abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1)) / 2)
    return best
