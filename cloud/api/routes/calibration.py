"""Calibrating a camera: fit surveyed points as the layout loader does (anyone operating the depot),
and save an accepted fit as the camera's calibration and view (admins), through the validated layout
replace. The commissioning tools call these."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Field

from cloud.api.deps import AdminKey, OperatorKey, ServiceDep
from cloud.api.schemas import CalibrationFitPublic, PointResidualPublic
from shared.calibration_check import FitReport, check_points, view_of_track, with_calibration
from shared.errors import LayoutError
from shared.layout import CalibrationPoint, Camera, Facility, parse_facility

router = APIRouter(tags=["calibration"])


class SurveyedPoints(BaseModel):
    """Surveyed rail-head marks: each a pixel and the track position it shows."""

    points: list[CalibrationPoint] = Field(description="Pixels and their track metres and offsets.")
    max_error_px: float = Field(3.0, gt=0, le=50, description="Largest residual the fit may leave.")


def _camera(facility: Facility, camera_id: str) -> Camera:
    camera = facility.cameras.get(camera_id)
    if camera is None:
        raise HTTPException(404, f"no camera {camera_id!r} in the layout")
    return camera


def _public(report: FitReport, facility: Facility, camera: Camera | None) -> CalibrationFitPublic:
    fitted = report.calibration.model if report.calibration is not None else None
    view = None
    if fitted is not None and camera is not None:
        view = view_of_track(fitted, camera.resolution, facility.tracks[camera.track].length_m)
    return CalibrationFitPublic(
        accepted=report.accepted,
        problems=report.problems,
        outlier=report.outlier,
        residuals=[
            PointResidualPublic(pixels=r.pixels, floor_cm=r.floor_cm, left_out_pixels=r.left_out_pixels)
            for r in report.residuals
        ],
        track_to_image=None if fitted is None else fitted.track_to_image_h.tolist(),
        view=view,
    )


def _check(camera: Camera, survey: SurveyedPoints) -> FitReport:
    width, height = camera.resolution
    return check_points(survey.points, survey.max_error_px, (width, height, camera.hfov_deg))


@router.post("/api/cameras/{camera_id}/calibration/fit")
def fit_calibration(
    camera_id: str, _: OperatorKey, service: ServiceDep, survey: Annotated[SurveyedPoints, Body()]
) -> CalibrationFitPublic:
    """Fit surveyed points for a camera as the layout loader would; saves nothing. Each point's
    residual, the verdict with the loader's reasons, the point to re-survey, and the view the fit
    gives the camera's track."""
    facility = service.facility
    camera = _camera(facility, camera_id)
    return _public(_check(camera, survey), facility, camera)


@router.put("/api/cameras/{camera_id}/calibration")
def save_calibration(
    camera_id: str, role: AdminKey, service: ServiceDep, survey: Annotated[SurveyedPoints, Body()]
) -> CalibrationFitPublic:
    """Make an accepted fit the camera's calibration, with the view it gives, through the validated
    layout replace (the layout file's previous version kept); 422 with the loader's reasons and the
    point to re-survey when the points are refused, and nothing is saved."""
    facility = service.facility
    camera = _camera(facility, camera_id)
    report = _check(camera, survey)
    fit = _public(report, facility, camera)
    if report.calibration is None or fit.view is None:
        reasons = fit.problems or ["the fit puts no metre of the camera's track inside its image"]
        raise HTTPException(422, {"problems": reasons, "outlier": fit.outlier})
    document = with_calibration(facility.model_dump(mode="json"), camera_id, report.calibration, fit.view)
    try:
        replaced = parse_facility(document, "calibration")
    except LayoutError as exc:
        raise HTTPException(422, {"problems": [f"{i.key}: {i.message}" for i in exc.issues]}) from exc
    service.replace_layout(replaced, by=f"api:{role.value}:calibration {camera_id}")
    return fit
