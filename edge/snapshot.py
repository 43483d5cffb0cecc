"""Full-resolution pictures of a camera for commissioning (calibrating it, checking its aim): one read
straight from its source, without a running node or a cloud (`depotwatch edge snapshot`), or a
running node's latest frame sent as a `Snapshot` when the cloud asks. Both encode the same JPEG."""

from __future__ import annotations

import uuid

import cv2

from edge.capture import CameraWorker, CaptureError
from edge.config import EdgeConfig
from edge.sources import SourceRegistry, camera_openers
from shared.errors import ConfigError, ConfigIssue
from shared.frames import Frame
from shared.layout import Camera, Facility
from shared.messages import Snapshot, SnapshotMeta

# Reads tried before giving up: a stream's first frames may not decode (no keyframe yet).
READS = 50
# High, since the picture is for placing surveyed marks to the pixel: a 1280x720 frame is ~0.4 MB,
# well within a snapshot's 8 MB, and encodes in a few ms (on the command handler's thread).
JPEG_QUALITY = 95


def full_resolution_jpeg(frame: Frame) -> bytes:
    """The frame as a JPEG at its own size; raises CaptureError when OpenCV cannot encode it."""
    try:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    except cv2.error as exc:
        raise CaptureError(f"cannot encode a frame of shape {frame.shape} as JPEG: {exc}") from exc
    if not ok:
        raise CaptureError(f"cannot encode a frame of shape {frame.shape} as JPEG")
    return data.tobytes()


def latest_snapshot(worker: CameraWorker, camera: Camera, requested_by: uuid.UUID | None) -> Snapshot:
    """The worker's latest frame as a Snapshot, stamped with `camera`'s calibration (the node's camera
    as it is now); raises ValueError when the camera has given no frame yet or its frame cannot be
    sent (not encodable, over the contract's size)."""
    latest = worker.latest
    if latest is None:
        status = worker.status()
        raise ValueError(
            f"camera {worker.camera_id} has given no frame yet ({status.state.value}: {status.reason})"
        )
    frame, captured_at = latest
    try:
        jpeg = full_resolution_jpeg(frame)
    except CaptureError as exc:
        raise ValueError(str(exc)) from exc
    height, width = frame.shape[:2]
    meta = SnapshotMeta(
        snapshot_id=uuid.uuid4(),
        node_id=worker.node_id,
        camera_id=worker.camera_id,
        captured_at=captured_at,
        width=width,
        height=height,
        calibration_version=camera.calibration_version,
        requested_by=requested_by,
    )
    return Snapshot(meta=meta, jpeg=jpeg)


def take_snapshot(config: EdgeConfig, facility: Facility, camera_id: str, sources: SourceRegistry) -> Frame:
    """The camera's next frame that decodes; raises ConfigError for a camera not of this node and
    CaptureError when its source opens but gives no frame."""
    mine = facility.cameras_of_node(config.node_id)
    if camera_id not in mine:
        known = ", ".join(sorted(mine))
        raise ConfigError(
            str(config.layout),
            [ConfigIssue("cameras", f"{camera_id!r} is not a camera of {config.node_id} ({known})")],
        )
    source = camera_openers(config, facility, sources)[camera_id]()
    try:
        for _ in range(READS):
            ok, frame = source.read()
            if ok and frame is not None:
                return frame
    finally:
        source.release()
    raise CaptureError(
        f"camera {camera_id}: {facility.cameras[camera_id].source} gave no frame in {READS} reads"
    )
