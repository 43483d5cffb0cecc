"""A fitted calibration drawn back over the camera's picture, to be trusted or not at a glance: both
rails, a tick across the track every metre with a label every 5 m, the ends of the view stretch, and
each surveyed point (a circle where it was clicked, a line to where the fit puts it)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from shared.calibration import RAIL_OFFSET_M, TrackCalibration
from shared.calibration_check import PointResidual
from shared.frames import Frame

TICK_HALF_M = 1.1  # a metre tick reaches this far either side of the centreline
RAIL = (0, 200, 255)  # BGR: amber
TICK = (255, 255, 255)
VIEW = (255, 160, 0)
POINT = (0, 255, 0)
MISS = (0, 0, 255)


def draw_overlay(
    image: Frame,
    calibration: TrackCalibration,
    view: tuple[float, float],
    residuals: Sequence[PointResidual] = (),
    outlier: int | None = None,
) -> Frame:
    """A copy of `image` with the calibration drawn over it along the track metres of `view`."""
    out = image.copy()
    start, end = view
    s = np.arange(start, end + 0.01, 0.1)
    for offset in (-RAIL_OFFSET_M, RAIL_OFFSET_M):
        _polyline(out, calibration, np.stack([s, np.full_like(s, offset)], axis=1), RAIL, 2)
    for metre in range(int(np.ceil(start)), int(np.floor(end)) + 1):
        across = np.array([[metre, -TICK_HALF_M], [metre, TICK_HALF_M]], dtype=np.float64)
        labelled = metre % 5 == 0
        _polyline(out, calibration, across, TICK, 2 if labelled else 1)
        if labelled:
            u, v = calibration.to_image(across[1:])[0]
            cv2.putText(out, f"{metre} m", (int(u) + 4, int(v) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.6, TICK, 2)
    for bound in view:
        across = np.array([[bound, -2.0], [bound, 2.0]], dtype=np.float64)
        _polyline(out, calibration, across, VIEW, 3)
    for i, r in enumerate(residuals):
        clicked = (round(r.point.image[0]), round(r.point.image[1]))
        fitted = calibration.to_image(np.array([[r.point.track_m, r.point.offset_m]]))[0]
        colour = MISS if i == outlier else POINT
        cv2.circle(out, clicked, 6, colour, 2)
        cv2.line(out, clicked, (round(fitted[0]), round(fitted[1])), colour, 2)
    return out


def _polyline(
    image: Frame, calibration: TrackCalibration, track: np.ndarray, colour: tuple[int, int, int], width: int
) -> None:
    front = calibration.in_front(track)
    if front.sum() < 2:
        return
    pixels = np.round(calibration.to_image(track[front])).astype(np.int32)
    cv2.polylines(image, [pixels.reshape(-1, 1, 2)], False, colour, width, cv2.LINE_AA)
