"""Calibrating a camera: fit surveyed points as the layout loader does (anyone operating the depot),
see the fit over the camera's latest snapshot and the strip the LPE would read under it, and save an
accepted fit as the camera's calibration and view (admins), through the validated layout replace. The
commissioning tools (the workbench at /calibrate) call these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from cloud.api.deps import AdminKey, OperatorKey, ServiceDep, SessionDep, camera_named
from cloud.api.routes.snapshots import latest_snapshot
from cloud.api.schemas import (
    CalibrationFitPublic,
    CalibrationSavedPublic,
    MountingPublic,
    PointResidualPublic,
)
from cloud.calibration_pictures import STRIP_ZOOM, overlay_jpeg, strip_png
from cloud.service import CloudService
from shared.calibration_check import FitReport, check_points, view_of_track, with_calibration
from shared.envelope import load_envelope, mounting_warning
from shared.errors import LayoutError
from shared.layout import CalibrationPoint, Camera, Facility, Interval, parse_facility
from shared.messages import SetCalibration
from shared.mounting import mounting_of
from shared.strip import FrameError

router = APIRouter(tags=["calibration"])


class SurveyedPoints(BaseModel):
    """Surveyed rail-head marks: each a pixel and the track position it shows."""

    # Bounded so that the calibration fits the node's command topic (16 KB) with room to spare.
    points: list[CalibrationPoint] = Field(
        max_length=64, description="Pixels and their track metres and offsets (at most 64)."
    )
    max_error_px: float = Field(3.0, gt=0, le=50, description="Largest residual the fit may leave.")


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


def _fitted_camera(camera: Camera, report: FitReport, view: tuple[float, float] | None) -> Camera | None:
    """The camera as it would be with the fit as its calibration and view; None when refused."""
    if report.calibration is None or view is None:
        return None
    return camera.model_copy(
        update={"calibration": report.calibration, "view": Interval(start_m=view[0], end_m=view[1])}
    )


def _mounted(
    fit: CalibrationFitPublic, report: FitReport, camera_id: str, camera: Camera, service: CloudService
) -> CalibrationFitPublic:
    """The fit with the mounting it implies, checked against the LPE's envelope as `depotwatch layout
    check` checks a layout's cameras."""
    fitted = _fitted_camera(camera, report, fit.view)
    if fitted is None:
        return fit
    mounting = mounting_of(fitted)
    envelope = load_envelope(service.config.calibration.lpe_model_dir)
    warning = None if envelope is None else mounting_warning(camera_id, mounting, envelope)
    public = MountingPublic(
        height_m=mounting.height_m,
        lateral_m=mounting.lateral_m,
        side="left" if mounting.lateral_m > 0 else "right",
        hfov_deg=mounting.hfov_deg,
        view_m=mounting.view_m,
        roll_deg=mounting.roll_deg,
    )
    return fit.model_copy(update={"mounting": public, "mounting_warnings": [warning] if warning else []})


@router.post("/api/cameras/{camera_id}/calibration/fit")
def fit_calibration(
    camera_id: str, _: OperatorKey, service: ServiceDep, survey: Annotated[SurveyedPoints, Body()]
) -> CalibrationFitPublic:
    """Fit surveyed points for a camera as the layout loader would; saves nothing. Each point's
    residual, the verdict with the loader's reasons, the point to re-survey, the view the fit gives
    the camera's track, and the mounting it implies with what of it lies outside the LPE's envelope."""
    camera = camera_named(service, camera_id)
    report = _check(camera, survey)
    return _mounted(_public(report, service.facility, camera), report, camera_id, camera, service)


@router.put("/api/cameras/{camera_id}/calibration")
def save_calibration(
    camera_id: str, role: AdminKey, service: ServiceDep, survey: Annotated[SurveyedPoints, Body()]
) -> CalibrationSavedPublic:
    """Make an accepted fit the camera's calibration, with the view it gives, through the validated
    layout replace (the layout file's previous version kept), and send it to the camera's node, which
    takes it without a restart and acknowledges the command (its id in the answer; none, and why,
    when the broker is not reachable: the layout is saved all the same). 422 with the loader's
    reasons and the point to re-survey when the points are refused, and nothing is saved."""
    fitted, _, fit = _accepted_or_422(camera_named(service, camera_id), survey, service)
    view = (fitted.view.start_m, fitted.view.end_m)
    document = with_calibration(service.facility.model_dump(mode="json"), camera_id, fitted.calibration, view)
    try:
        replaced = parse_facility(document, "calibration")
    except LayoutError as exc:
        raise HTTPException(422, {"problems": [f"{i.key}: {i.message}" for i in exc.issues]}) from exc
    service.replace_layout(replaced, by=f"api:{role.value}:calibration {camera_id}")
    saved = replaced.cameras[camera_id]
    command = SetCalibration(camera_id=camera_id, calibration=saved.calibration, view=saved.view)
    request = service.send_command(saved.node, command, by=f"api:{role.value}")
    return CalibrationSavedPublic(
        **fit.model_dump(),
        node_id=saved.node,
        command_id=None if request is None else str(request.command_id),
        not_sent=f"the broker is not reachable: node {saved.node} was not told" if request is None else None,
    )


PICTURE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No camera of that id, or no snapshot of it yet."},
    409: {"description": "The snapshot cannot be read at the camera's resolution."},
    422: {"description": "The points are refused: the loader's reasons and the point to re-survey."},
}


def _accepted_or_422(
    camera: Camera, survey: SurveyedPoints, service: CloudService
) -> tuple[Camera, FitReport, CalibrationFitPublic]:
    """The camera under an accepted fit of the points, the fit and its public form; 422 with the
    loader's reasons and the point to re-survey otherwise."""
    report = _check(camera, survey)
    fit = _public(report, service.facility, camera)
    fitted = _fitted_camera(camera, report, fit.view)
    if fitted is None:
        reasons = fit.problems or ["the fit puts no metre of the camera's track inside its image"]
        raise HTTPException(422, {"problems": reasons, "outlier": fit.outlier})
    return fitted, report, fit


def _picture(
    camera_id: str,
    service: CloudService,
    session: Session,
    survey: SurveyedPoints,
    draw: Callable[[bytes, Camera, FitReport], bytes],
    media_type: str,
) -> Response:
    """A picture drawn from the camera's latest snapshot under an accepted fit of the points; 409
    when the snapshot cannot be read at the camera's resolution."""
    fitted, report, _ = _accepted_or_422(camera_named(service, camera_id), survey, service)
    jpeg = latest_snapshot(service, session, camera_id).jpeg
    try:
        return Response(draw(jpeg, fitted, report), media_type=media_type)
    except FrameError as exc:
        raise HTTPException(409, str(exc)) from exc


@router.post(
    "/api/cameras/{camera_id}/calibration/overlay",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The snapshot with the fit drawn over it."},
        **PICTURE_ERRORS,
    },
)
def calibration_overlay(
    camera_id: str,
    _: OperatorKey,
    service: ServiceDep,
    session: SessionDep,
    survey: Annotated[SurveyedPoints, Body()],
) -> Response:
    """The camera's latest snapshot with an accepted fit of the points drawn over it (JPEG): both
    rails, a tick every metre with a label every 5 m, the ends of the view, each point and where the
    fit puts it, as `depotwatch calibrate fit` draws it. Saves nothing."""
    return _picture(
        camera_id,
        service,
        session,
        survey,
        lambda jpeg, fitted, report: overlay_jpeg(camera_id, jpeg, fitted, report.residuals),
        "image/jpeg",
    )


@router.post(
    "/api/cameras/{camera_id}/calibration/strip",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": f"The strip, enlarged {STRIP_ZOOM}×."},
        **PICTURE_ERRORS,
    },
)
def calibration_strip(
    camera_id: str,
    _: OperatorKey,
    service: ServiceDep,
    session: SessionDep,
    survey: Annotated[SurveyedPoints, Body()],
) -> Response:
    """The strip the LPE would read from the camera's latest snapshot under an accepted fit of the
    points (PNG, each cell STRIP_ZOOM pixels square): track metres of the view from left to right,
    from the rail head up. Saves nothing."""
    return _picture(
        camera_id,
        service,
        session,
        survey,
        lambda jpeg, fitted, _: strip_png(camera_id, jpeg, fitted),
        "image/png",
    )
