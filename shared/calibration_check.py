"""Checking a set of surveyed points before it becomes a camera's calibration: the layout loader's own
fit and verdict (shared.layout.Calibration), each point's residual in pixels and in centimetres on the
floor, and, when the points disagree, which one the others disagree with. That is a point without
which the rest agree (their fit within the allowed error). With the usual six marks several points
are (any one of a rail's three leaves an exact fit), so the lens decides: of those fits, the one a
pinhole camera with the camera's field of view can make (its homography's rotation columns
orthonormal) names the point; without the lens, the one the rest's fit misses by least.
The commissioning tools (`depotwatch calibrate fit`, the workbench) show this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from shared.calibration import TrackCalibration
from shared.errors import CalibrationError
from shared.layout import Calibration, CalibrationPoint
from shared.projection import intrinsics


@dataclass(frozen=True)
class PointResidual:
    """How far the fit puts one surveyed point from where it was surveyed."""

    point: CalibrationPoint
    pixels: float  # the fit's pixel for its track position, from the surveyed pixel
    floor_cm: float  # the fit's track position for its pixel, from the surveyed one, on the floor
    left_out_pixels: float | None  # the same as `pixels`, fitted without this point (None: unfittable)


@dataclass(frozen=True)
class FitReport:
    """The verdict on a set of points and, when they could be fitted at all, each point's residual."""

    calibration: Calibration | None  # as the layout would hold it; None when refused
    problems: list[str]  # the loader's reasons for refusing, empty when accepted
    residuals: list[PointResidual]
    outlier: int | None  # index of the point the others disagree with, when the points disagree

    @property
    def accepted(self) -> bool:
        """Whether the layout loader takes these points."""
        return self.calibration is not None


def check_points(
    points: Sequence[CalibrationPoint],
    max_error_px: float = 3.0,
    lens: tuple[int, int, float] | None = None,
) -> FitReport:
    """Fit `points` as the layout loader does and report its verdict and every point's residual;
    `lens` (image width, height, horizontal field of view) lets it tell which point disagrees."""
    problems: list[str] = []
    calibration = None
    try:
        calibration = Calibration(points=list(points), max_error_px=max_error_px)
    except ValidationError as exc:
        problems = [str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()]
    image, track = _arrays(points)
    try:
        fitted = calibration.model if calibration is not None else TrackCalibration.fit(image, track)
    except CalibrationError:
        return FitReport(calibration, problems, [], None)
    pixels = np.linalg.norm(fitted.to_image(track) - image, axis=1)
    floor_cm = np.linalg.norm(fitted.to_track(image) - track, axis=1) * 100
    without = [_fit_without(image, track, i, lens) for i in range(len(points))]
    residuals = [
        PointResidual(p, float(pixels[i]), float(floor_cm[i]), None if rest is None else rest[1])
        for i, (p, rest) in enumerate(zip(points, without, strict=True))
    ]
    outlier = None
    if calibration is None and fitted.max_error_px > max_error_px:
        agreeing = [
            (rest[2], rest[1], i)
            for i, rest in enumerate(without)
            if rest is not None and rest[0] <= max_error_px
        ]
        outlier = min(agreeing)[2] if agreeing else None
    return FitReport(calibration, problems, residuals, outlier)


def view_of_track(
    calibration: TrackCalibration, resolution: tuple[int, int], track_length_m: float
) -> tuple[float, float] | None:
    """The track metres whose centreline the fit puts inside a picture of `resolution`, to 0.1 m (a
    camera's `view` in the layout); None when no metre of the track is in it."""
    found = calibration.rail_interval_in_image(*resolution, 0.0, track_length_m)
    return None if found is None else (round(found[0], 1), round(found[1], 1))


def with_calibration(
    document: dict[str, Any], camera_id: str, calibration: Calibration, view: tuple[float, float]
) -> dict[str, Any]:
    """A layout document (as YAML or the API holds it) with the camera's calibration and view
    replaced; validate it (shared.layout.parse_facility) before using it."""
    entry = document["cameras"][camera_id]
    entry["calibration"] = {
        "points": [p.model_dump(mode="json") for p in calibration.points],
        "max_error_px": calibration.max_error_px,
    }
    entry["view"] = {"start_m": view[0], "end_m": view[1]}
    return document


def _arrays(points: Sequence[CalibrationPoint]) -> tuple[np.ndarray, np.ndarray]:
    image = np.array([p.image for p in points], dtype=np.float64).reshape(-1, 2)
    track = np.array([(p.track_m, p.offset_m) for p in points], dtype=np.float64).reshape(-1, 2)
    return image, track


def _fit_without(
    image: np.ndarray, track: np.ndarray, index: int, lens: tuple[int, int, float] | None
) -> tuple[float, float, float] | None:
    """Fitted without point `index`: the rest's worst residual, how far that fit misses the point
    (pixels), and how far it is from one a pinhole camera with `lens` makes (0 without a lens);
    None when the rest cannot be fitted."""
    keep = np.arange(len(image)) != index
    try:
        fitted = TrackCalibration.fit(image[keep], track[keep])
    except CalibrationError:
        return None
    missed = float(np.linalg.norm(fitted.to_image(track[index : index + 1])[0] - image[index]))
    return fitted.max_error_px, missed, 0.0 if lens is None else _not_pinhole(fitted, lens)


def _not_pinhole(fitted: TrackCalibration, lens: tuple[int, int, float]) -> float:
    """0 when the floor homography is K·[r1 r2 t] with r1, r2 orthonormal, as a real camera's is."""
    m = np.linalg.inv(intrinsics(*lens)) @ fitted.track_to_image_h
    a, b = m[:, 0], m[:, 1]
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return 2 * abs(na - nb) / (na + nb) + abs(float(a @ b)) / (na * nb)
