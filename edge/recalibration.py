"""A new calibration of one of the node's cameras (a SetCalibration command), checked as the layout
loader checks a layout and written into the node's layout file, the previous file kept. The node
writes the file before it switches its running units, so a node that dies between the two starts
again with the new calibration; a calibration refused here, or a file that cannot be written, leaves
both as they were. Each refusal is a ValueError with the reason in one line, for the command's ack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.calibration_check import with_calibration
from shared.errors import LayoutError
from shared.layout import Facility, calibration_version, parse_facility
from shared.messages import SetCalibration
from shared.yaml_config import read_yaml, write_yaml_atomically


def recalibrated(facility: Facility, command: SetCalibration) -> Facility:
    """`facility` with the command's calibration and view for its camera, validated as the layout
    loader validates (a point outside the image, a view off the track are refused)."""
    return _validated(facility.model_dump(mode="json"), command, "set_calibration")


def write_calibration(path: Path, command: SetCalibration) -> bool:
    """Put the command's calibration and view into the layout file at `path` (re-read, so that what
    else it holds now is kept, though the node loaded it at its start); returns False when the file
    holds them already (the cloud and the node may share one file), which is then left alone, its
    previous version with it."""
    try:
        document = read_yaml(path, LayoutError)
    except LayoutError as exc:
        raise ValueError(_reason(exc)) from exc
    if _filed_version(document, command.camera_id) == calibration_version(command.calibration, command.view):
        return False
    _validated(document, command, str(path))
    try:
        write_yaml_atomically(path, document)
    except OSError as exc:
        raise ValueError(f"cannot write the layout file {path}: {exc.strerror or exc}") from exc
    return True


def _validated(document: dict[str, Any], command: SetCalibration, source: str) -> Facility:
    """Put the command into `document` (in place) and validate it as a facility."""
    cameras = document.get("cameras")
    if not isinstance(cameras, dict) or command.camera_id not in cameras:
        raise ValueError(f"{source}: no camera {command.camera_id!r} in the layout")
    view = (command.view.start_m, command.view.end_m)
    with_calibration(document, command.camera_id, command.calibration, view)
    try:
        return parse_facility(document, source)
    except LayoutError as exc:
        raise ValueError(_reason(exc)) from exc


def _filed_version(document: dict[str, Any], camera_id: str) -> str | None:
    """The calibration version a layout document holds for a camera; None if it holds none valid."""
    try:
        camera = parse_facility(document).cameras.get(camera_id)
    except LayoutError:
        return None
    return None if camera is None else camera.calibration_version


def _reason(exc: LayoutError) -> str:
    """The loader's issues on one line, for an ack's reason."""
    return f"{exc.source}: " + "; ".join(str(issue) for issue in exc.issues)
