"""Pictures of a fit for the calibration workbench, made from a camera's stored snapshot: the fit drawn
back over it (shared.calibration_overlay, as `depotwatch calibrate fit` draws it), and the strip the
LPE would read from it under the fit (shared.strip, the edge's own rectification)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from shared.calibration_check import PointResidual
from shared.calibration_overlay import draw_overlay
from shared.frames import Frame
from shared.layout import Camera
from shared.strip import FrameError, StripGeometry

# The strip is 256×64 cells; four screen pixels a cell make it readable beside the snapshot.
STRIP_ZOOM = 4
OVERLAY_JPEG_QUALITY = 90


def decode_snapshot(camera_id: str, jpeg: bytes, camera: Camera) -> Frame:
    """The snapshot as a BGR frame; raises FrameError when it cannot be decoded or is not of the
    camera's resolution (its pixels would not be the ones the points were surveyed in)."""
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError(f"camera {camera_id}: its snapshot is not a JPEG that can be decoded")
    width, height = camera.resolution
    if image.shape[:2] != (height, width):
        raise FrameError(
            f"camera {camera_id}: its snapshot is {image.shape[1]}x{image.shape[0]}, "
            f"the layout says {width}x{height}"
        )
    return np.asarray(image, dtype=np.uint8)


def overlay_jpeg(
    camera_id: str,
    jpeg: bytes,
    camera: Camera,
    residuals: Sequence[PointResidual] = (),
    outlier: int | None = None,
) -> bytes:
    """The snapshot with `camera`'s calibration drawn over it along its view, as a JPEG; raises
    FrameError as `decode_snapshot` does."""
    view = (camera.view.start_m, camera.view.end_m)
    drawn = draw_overlay(
        decode_snapshot(camera_id, jpeg, camera), camera.calibration.model, view, residuals, outlier
    )
    return _encode(".jpg", drawn, [cv2.IMWRITE_JPEG_QUALITY, OVERLAY_JPEG_QUALITY])


def strip_png(camera_id: str, jpeg: bytes, camera: Camera) -> bytes:
    """The strip the LPE reads from the snapshot under `camera`'s calibration and view, enlarged
    STRIP_ZOOM times, as a PNG; raises FrameError as `decode_snapshot` does."""
    strip = StripGeometry.for_camera(camera_id, camera).rectify(decode_snapshot(camera_id, jpeg, camera))
    enlarged = cv2.resize(strip, None, fx=STRIP_ZOOM, fy=STRIP_ZOOM, interpolation=cv2.INTER_NEAREST)
    return _encode(".png", np.asarray(enlarged, dtype=np.uint8))


def _encode(extension: str, image: Frame, params: Sequence[int] = ()) -> bytes:
    ok, encoded = cv2.imencode(extension, image, list(params))
    if not ok:  # an image of a shape cv2 cannot encode: our frames are all 8-bit BGR
        raise FrameError(f"could not encode a {extension} picture")
    return encoded.tobytes()
