"""A pinhole camera in track coordinates, recovered from a calibration and the lens's field of view:
the edge rectifies frames with it, the simulator renders its scenes with it.

Track coordinates are right-handed: x = metres along the track, y = lateral offset (positive to the
left when facing increasing metres), z = height above the rail head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.calibration import TrackCalibration
from shared.errors import SimulatorError

FloatArray = npt.NDArray[np.float64]

# Points closer to the camera plane than this (metres) are clipped before projection.
NEAR_PLANE_M = 0.3


def intrinsics(width: int, height: int, hfov_deg: float) -> FloatArray:
    """Camera matrix with square pixels and the principal point at the image centre."""
    f = (width / 2) / math.tan(math.radians(hfov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics K and pose (R, t) mapping track coordinates to camera coordinates."""

    k: FloatArray
    r: FloatArray
    t: FloatArray
    width: int
    height: int

    @classmethod
    def look_at(
        cls,
        position: tuple[float, float, float],
        target: tuple[float, float, float],
        width: int,
        height: int,
        hfov_deg: float,
        roll_deg: float = 0.0,
    ) -> PinholeCamera:
        """A camera at `position` looking at `target`, level unless rolled by `roll_deg` about its
        optical axis (positive turns the image's right side up)."""
        pos = np.asarray(position, dtype=np.float64)
        forward = np.asarray(target, dtype=np.float64) - pos
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        if np.linalg.norm(right) < 1e-9:
            raise SimulatorError("a camera looking straight down has no defined roll")
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        if roll_deg:
            a = math.radians(roll_deg)
            right, down = math.cos(a) * right - math.sin(a) * down, math.sin(a) * right + math.cos(a) * down
        r = np.stack([right, down, forward])
        return cls(intrinsics(width, height, hfov_deg), r, -r @ pos, width, height)

    @classmethod
    def from_calibration(
        cls, calibration: TrackCalibration, width: int, height: int, hfov_deg: float
    ) -> PinholeCamera:
        """Recover the pose from a floor homography and the lens's field of view."""
        k = intrinsics(width, height, hfov_deg)
        m = np.linalg.inv(k) @ calibration.track_to_image_h
        # The fitted homography is scaled so w > 0 in front of the camera, hence a positive scale.
        scale = 2.0 / (np.linalg.norm(m[:, 0]) + np.linalg.norm(m[:, 1]))
        r1, r2, t = m[:, 0] * scale, m[:, 1] * scale, m[:, 2] * scale
        u, _, vt = np.linalg.svd(np.stack([r1, r2, np.cross(r1, r2)], axis=1))
        r = u @ vt
        if np.linalg.det(r) < 0:
            raise SimulatorError("calibration implies a mirrored camera; check the sign of offsets")
        return cls(k, r, t, width, height)

    @property
    def position(self) -> FloatArray:
        """Camera centre in track coordinates."""
        return np.asarray(-self.r.T @ self.t)

    def to_camera(self, points: FloatArray) -> FloatArray:
        """N×3 track points to N×3 camera coordinates (z = depth)."""
        return np.asarray(np.asarray(points, dtype=np.float64).reshape(-1, 3) @ self.r.T + self.t)

    def project(self, points: FloatArray) -> tuple[FloatArray, FloatArray]:
        """N×3 track points to N×2 pixels and N depths; callers clip points behind the near plane."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        uvw = cam @ self.k.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / uvw[:, 2:3]
        return np.asarray(uv), np.asarray(depth)
