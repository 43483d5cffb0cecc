"""`depotwatch calibrate`: commissioning a camera's calibration from the command line, for scripting
and for sites without a browser: fit surveyed points against a snapshot, see each point's residual and
the loader's verdict, draw the fit back over the picture, and write it into the layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import typer
from pydantic import ValidationError
from rich.table import Table

from depotwatch.cli_support import console, errors, exit_on_error
from shared.calibration import RAIL_OFFSET_M
from shared.calibration_check import FitReport, check_points, view_of_track, with_calibration
from shared.calibration_overlay import draw_overlay
from shared.errors import ConfigError, ConfigIssue
from shared.frames import Frame
from shared.layout import CalibrationPoint, parse_facility
from shared.yaml_config import read_yaml, write_yaml_atomically

calibrate_app = typer.Typer(help="Commissioning a camera's calibration.", no_args_is_help=True)

RAILS = {"left": RAIL_OFFSET_M, "right": -RAIL_OFFSET_M}


def read_points(path: Path) -> tuple[list[CalibrationPoint], float]:
    """Surveyed points from YAML: `points:`, a list of `{image: [u, v], track_m: M}` each with
    `offset_m: O` or `rail: left|right`, and optionally `max_error_px:`. Raises ConfigError."""
    document = read_yaml(path)
    entries = document.get("points")
    if not isinstance(entries, list):
        raise ConfigError(str(path), [ConfigIssue("points", "a list of surveyed points is needed")])
    points, issues = [], []
    for i, entry in enumerate(entries):
        fields = dict(entry) if isinstance(entry, dict) else {}
        rail = fields.pop("rail", None)
        if rail is not None:
            if rail not in RAILS or "offset_m" in fields:
                issues.append(ConfigIssue(f"points.{i}.rail", "left or right, and no offset_m beside it"))
                continue
            fields["offset_m"] = RAILS[rail]
        try:
            points.append(CalibrationPoint.model_validate(fields))
        except ValidationError as exc:
            issues += [
                ConfigIssue(".".join(["points", str(i), *map(str, e["loc"])]), e["msg"]) for e in exc.errors()
            ]
    if issues:
        raise ConfigError(str(path), issues)
    return points, float(document.get("max_error_px", 3.0))


def _print_report(report: FitReport) -> None:
    table = Table(title="surveyed points")
    for column in ("#", "pixel", "track m", "offset m", "residual px", "floor cm", "left out px"):
        table.add_column(column, justify="right")
    for i, r in enumerate(report.residuals):
        flag = " ← disagrees" if i == report.outlier else ""
        table.add_row(
            str(i),
            f"{r.point.image[0]:.1f}, {r.point.image[1]:.1f}",
            f"{r.point.track_m:g}",
            f"{r.point.offset_m:g}",
            f"{r.pixels:.2f}",
            f"{r.floor_cm:.1f}",
            ("-" if r.left_out_pixels is None else f"{r.left_out_pixels:.1f}") + flag,
        )
    if report.residuals:
        console.print(table)


@calibrate_app.command("fit")
def calibrate_fit(
    image: Annotated[Path, typer.Option(help="The camera's snapshot (JPEG or PNG).")],
    points: Annotated[Path, typer.Option(help="Surveyed points YAML (see `read_points`).")],
    track: Annotated[str, typer.Option(help="Track the camera watches.")],
    layout: Annotated[Path, typer.Option(help="Facility layout the track is in.")] = Path(
        "examples/facility.yaml"
    ),
    overlay: Annotated[Path | None, typer.Option(help="Where to write the overlay PNG.")] = None,
    write: Annotated[bool, typer.Option(help="Write the calibration and view into the layout.")] = False,
    camera: Annotated[str | None, typer.Option(help="Camera id in the layout (with --write).")] = None,
    hfov: Annotated[
        float | None,
        typer.Option(help="The lens's horizontal field of view, degrees (default: the camera's)."),
    ] = None,
) -> None:
    """Fit surveyed points as the layout loader does: each point's residual, the verdict, an overlay."""
    with exit_on_error():
        surveyed, max_error_px = read_points(points)
        data = read_yaml(layout)
        facility = parse_facility(data, str(layout))
        if track not in facility.tracks:
            raise ConfigError(str(layout), [ConfigIssue("tracks", f"no track {track!r}")])
        if write and (camera is None or camera not in facility.cameras):
            raise ConfigError(
                str(layout), [ConfigIssue("cameras", f"--write needs --camera, a camera of {layout}")]
            )
    read = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if read is None:
        errors.print(f"{image}: not an image OpenCV can read", markup=False)
        raise typer.Exit(2)
    picture: Frame = np.asarray(read, dtype=np.uint8)
    height, width = picture.shape[:2]
    lens_hfov = (
        hfov
        if hfov is not None
        else (facility.cameras[camera].hfov_deg if camera in facility.cameras else None)
    )
    report = check_points(surveyed, max_error_px, None if lens_hfov is None else (width, height, lens_hfov))
    _print_report(report)
    if not report.accepted or report.calibration is None:
        for problem in report.problems:
            errors.print(f"refused: {problem}", markup=False, soft_wrap=True)
        if report.outlier is not None:
            missed = report.residuals[report.outlier].left_out_pixels or 0.0
            errors.print(
                f"point {report.outlier} disagrees with the others: fitted without it, the rest agree "
                f"and miss it by {missed:.1f} px; re-survey it",
                markup=False,
                soft_wrap=True,
            )
        raise typer.Exit(1)
    fitted = report.calibration.model
    view = view_of_track(fitted, (width, height), facility.tracks[track].length_m)
    if view is None:
        errors.print(f"refused: the fit puts no metre of {track} inside the {width}x{height} picture")
        raise typer.Exit(1)
    out = overlay or image.with_name(f"{image.stem}.overlay.png")
    cv2.imwrite(str(out), draw_overlay(picture, fitted, view, report.residuals, report.outlier))
    console.print(
        f"accepted: worst residual {fitted.max_error_px:.2f} px, rms {fitted.rms_error_px:.2f} px; "
        f"{track} in view from {view[0]:g} to {view[1]:g} m; overlay {out}",
        highlight=False,
    )
    if write and camera is not None:
        entry = data["cameras"][camera]
        entry["track"], entry["resolution"] = track, [width, height]  # as the snapshot shows them
        with exit_on_error():
            calibrated = with_calibration(data, camera, report.calibration, view)
            parse_facility(calibrated, str(layout))  # written only if the whole layout still validates
            write_yaml_atomically(layout, calibrated)
        console.print(f"{layout}: camera {camera} calibrated (previous file kept as {layout.name}.previous)")
