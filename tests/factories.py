"""Valid messages (and tracked locomotives) with sensible defaults; tests override only what they are
about."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np

from cloud.fse import Loco
from shared.layout import Facility
from shared.messages import (
    CameraHealth,
    CameraState,
    CameraStatus,
    CommandAck,
    CommandRequest,
    Detection,
    LocoExtent,
    ModelRef,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    Recognition,
    SetSampleRate,
    Snapshot,
    SnapshotMeta,
    Thumbnail,
    ThumbnailMeta,
    TrackSpan,
)

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


def detection(**overrides: Any) -> Detection:
    fields: dict[str, Any] = {
        "observation_id": uuid.uuid4(),
        "node_id": "edge-bay1",
        "camera_id": "T1-C2",
        "track_id": "T1",
        "model": ModelRef(name="lpe", version="1.0.0"),
        "captured_at": NOW,
        "seq": 42,
        "view": TrackSpan(start_m=13.4, end_m=27.3),
        "extents": [
            LocoExtent(
                start_m=13.4, end_m=22.1, start_beyond_view=True, end_beyond_view=False, confidence=0.93
            )
        ],
        "camera": CameraHealth(state=CameraState.ONLINE, fps=2.0),
    }
    return Detection(**(fields | overrides))


def detection_for(facility: Facility, camera_id: str, **overrides: Any) -> Detection:
    """A detection of a camera of the layout: its node, track and view; no locomotive unless given."""
    camera = facility.cameras[camera_id]
    fields: dict[str, Any] = {
        "node_id": camera.node,
        "camera_id": camera_id,
        "track_id": camera.track,
        "view": TrackSpan(start_m=camera.view.start_m, end_m=camera.view.end_m),
        "extents": [],
    }
    return detection(**(fields | overrides))


def extent(start_m: float, end_m: float, confidence: float = 0.9) -> LocoExtent:
    """A locomotive extent with both ends seen."""
    return LocoExtent(
        start_m=start_m, end_m=end_m, start_beyond_view=False, end_beyond_view=False, confidence=confidence
    )


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    image = np.full((height, width, 3), 128, np.uint8)
    cv2.putText(image, "2TE116", (2, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims `width` x `height` (a decompression bomb when large)."""
    data = bytearray(jpeg_bytes())
    sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def thumbnail(**meta_overrides: Any) -> Thumbnail:
    meta: dict[str, Any] = {
        "thumbnail_id": uuid.uuid4(),
        "observation_id": uuid.uuid4(),
        "node_id": "edge-bay1",
        "camera_id": "T1-C2",
        "track_id": "T1",
        "captured_at": NOW,
        "extent_index": 0,
        "span": TrackSpan(start_m=14.0, end_m=18.0),
        "bbox": (100, 200, 64, 48),
    }
    return Thumbnail(meta=ThumbnailMeta(**(meta | meta_overrides)), jpeg=jpeg_bytes())


def snapshot(**meta_overrides: Any) -> Snapshot:
    """A camera's whole frame; its JPEG is made at the meta's width and height."""
    meta: dict[str, Any] = {
        "snapshot_id": uuid.uuid4(),
        "node_id": "edge-bay1",
        "camera_id": "T1-C2",
        "captured_at": NOW,
        "width": 160,
        "height": 90,
        "calibration_version": "0123456789ab",
        "requested_by": uuid.uuid4(),
    } | meta_overrides
    return Snapshot(meta=SnapshotMeta(**meta), jpeg=jpeg_bytes(meta["width"], meta["height"]))


def node_birth(**overrides: Any) -> NodeLifecycle:
    fields: dict[str, Any] = {
        "node_id": "edge-bay1",
        "state": NodeState.ONLINE,
        "bd_seq": 3,
        "at": NOW,
        "software_version": "0.1.0",
        "cameras": ["T1-C1", "T1-C2"],
    }
    return NodeLifecycle(**(fields | overrides))


def node_status(**overrides: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "node_id": "edge-bay1",
        "at": NOW,
        "uptime_s": 3600.0,
        "spool_depth": 0,
        "spool_dropped_total": 0,
        "cameras_online": 4,
        "cameras_total": 4,
    }
    return NodeStatus(**(fields | overrides))


def camera_status(**overrides: Any) -> CameraStatus:
    fields: dict[str, Any] = {
        "node_id": "edge-bay1",
        "camera_id": "T1-C2",
        "at": NOW,
        "state": CameraState.ONLINE,
        "fps_captured": 25.0,
        "fps_inferred": 2.0,
        "frames_dropped_total": 0,
        "reconnects_last_hour": 0,
        "last_frame_at": NOW,
    }
    return CameraStatus(**(fields | overrides))


def command(**overrides: Any) -> CommandRequest:
    fields: dict[str, Any] = {
        "command_id": uuid.uuid4(),
        "issued_at": NOW,
        "issued_by": "operator@depot",
        "command": SetSampleRate(camera_id="T1-C2", fps=1.0),
    }
    return CommandRequest(**(fields | overrides))


def command_ack(**overrides: Any) -> CommandAck:
    fields: dict[str, Any] = {
        "command_id": uuid.uuid4(),
        "node_id": "edge-bay1",
        "at": NOW,
        "accepted": True,
    }
    return CommandAck(**(fields | overrides))


def recognition(**overrides: Any) -> Recognition:
    fields: dict[str, Any] = {
        "thumbnail_id": uuid.uuid4(),
        "node_id": "edge-bay1",
        "camera_id": "T1-C2",
        "track_id": "T1",
        "captured_at": NOW,
        "span": TrackSpan(start_m=14.0, end_m=22.0),
        "series": "TE33A",
        "series_confidence": 0.98,
        "plate": "TE33A-2251",
        "plate_confidence": 0.95,
        "plate_raw": "TE33A-2251",
        "models": [ModelRef(name="loco_model", version="1.0.0"), ModelRef(name="plate", version="1.0.0")],
    }
    return Recognition(**(fields | overrides))


def loco(loco_id: str, track: str, start: float, end: float) -> Loco:
    """A locomotive standing, both ends seen, for an hour until NOW."""
    return Loco(
        loco_id=loco_id,
        track_id=track,
        start_m=start,
        end_m=end,
        start_seen=True,
        end_seen=True,
        station=None,
        moving=False,
        first_seen=NOW - timedelta(hours=1),
        last_seen=NOW,
        confidence=0.9,
        settled=(start, end),
        still_since=NOW - timedelta(hours=1),
        length_m=end - start,
    )
