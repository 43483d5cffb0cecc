"""Thumbnails: JPEG crops of a locomotive's side where its cab and number are, sent when something
changed or at a slow refresh, never more often than a per-locomotive limit."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from edge.config import ThumbnailConfig
from shared.frames import Frame
from shared.layout import Camera
from shared.messages import LocoExtent, Thumbnail, ThumbnailMeta, TrackSpan
from shared.projection import NEAR_PLANE_M, PinholeCamera

# The side of a locomotive between the frame and the roof, where numbers and cab windows are.
SIDE_OFFSET_M = 1.6
SIDE_Z = (1.2, 4.6)
# Extents whose centres are closer than this are taken for the same locomotive.
SAME_LOCO_M = 2.0
# An extent whose ends moved more than this changed: send a fresh thumbnail.
MOVED_M = 0.5
# A thumbnail the cloud asked for is sent at the camera's next estimate that shows a locomotive there;
# a request that finds none within this long (the locomotive left) lapses.
REQUEST_TTL_S = 120.0


@dataclass
class _Sent:
    centre_m: float
    span: tuple[float, float]
    at: float


class ThumbnailMaker:
    """Crops, encodes and rate-limits thumbnails for the cameras of one node."""

    def __init__(self, cameras: Mapping[str, Camera], config: ThumbnailConfig) -> None:
        self.config = config
        self._cameras = {cid: _pinhole(cam) for cid, cam in cameras.items()}
        self._sent: dict[str, list[_Sent]] = {cid: [] for cid in cameras}
        # Requests arrive on the MQTT handler thread; estimates are made on the node's own.
        self._asked_lock = threading.Lock()
        self._asked: dict[str, list[tuple[float, float, float]]] = {cid: [] for cid in cameras}

    def request(self, camera_id: str, start_m: float, end_m: float, now: float) -> None:
        """Send a fresh thumbnail of the locomotive over [start_m, end_m] when next seen (the cloud
        asks while its series or number is not settled); raises KeyError for a camera not here."""
        with self._asked_lock:
            self._asked[camera_id].append((start_m, end_m, now + REQUEST_TTL_S))

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        """Crop `camera_id`'s next thumbnails with `camera`'s calibration; raises KeyError for a camera
        not here."""
        if camera_id not in self._cameras:
            raise KeyError(camera_id)
        self._cameras[camera_id] = _pinhole(camera)

    def due(self, camera_id: str, extent: LocoExtent, now: float) -> bool:
        """Whether this extent deserves a thumbnail now; records it when it does."""
        if not self.config.enabled:
            return False
        centre = (extent.start_m + extent.end_m) / 2
        history = self._sent[camera_id]
        history[:] = [s for s in history if now - s.at < self.config.refresh_s]
        with self._asked_lock:
            asked = self._asked[camera_id]
            asked[:] = [a for a in asked if now < a[2]]
            wanted = [a for a in asked if a[0] < extent.end_m and extent.start_m < a[1]]
        for sent in history:
            if abs(sent.centre_m - centre) < SAME_LOCO_M:
                moved = max(abs(sent.span[0] - extent.start_m), abs(sent.span[1] - extent.end_m)) > MOVED_M
                if not (moved or wanted) or now - sent.at < self.config.min_interval_s:
                    return False
                history.remove(sent)
                break
        history.append(_Sent(centre, (extent.start_m, extent.end_m), now))
        with self._asked_lock:
            asked[:] = [a for a in asked if a not in wanted]
        return True

    def make(
        self,
        *,
        node_id: str,
        camera_id: str,
        track_id: str,
        flow: str,
        observation_id: uuid.UUID,
        captured_at: datetime,
        index: int,
        extent: LocoExtent,
        frame: Frame,
    ) -> Thumbnail | None:
        """The crop of one extent, or None when it falls outside the frame."""
        bbox = self._bbox(camera_id, extent, frame.shape[1], frame.shape[0])
        if bbox is None:
            return None
        x, y, w, h = bbox
        crop = frame[y : y + h, x : x + w]
        if w > self.config.max_width:
            scale = self.config.max_width / w
            size = (self.config.max_width, max(1, int(h * scale)))
            crop = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            return None
        meta = ThumbnailMeta(
            thumbnail_id=uuid.uuid4(),
            observation_id=observation_id,
            node_id=node_id,
            camera_id=camera_id,
            track_id=track_id,
            flow=flow,
            captured_at=captured_at,
            extent_index=index,
            span=TrackSpan(start_m=extent.start_m, end_m=extent.end_m),
            bbox=bbox,
        )
        return Thumbnail(meta=meta, jpeg=jpeg.tobytes())

    def _bbox(
        self, camera_id: str, extent: LocoExtent, width: int, height: int
    ) -> tuple[int, int, int, int] | None:
        camera = self._cameras[camera_id]
        side = -1.0 if camera.position[1] < 0 else 1.0
        s = np.linspace(extent.start_m, extent.end_m, 8)
        points = np.array([[m, side * SIDE_OFFSET_M, z] for m in s for z in SIDE_Z])
        uv, depth = camera.project(points)
        uv = uv[depth > NEAR_PLANE_M]
        if len(uv) == 0:
            return None
        x0, y0 = np.clip(uv.min(axis=0), 0, [width - 1, height - 1]).astype(int)
        x1, y1 = np.clip(uv.max(axis=0), 0, [width, height]).astype(int)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def _pinhole(camera: Camera) -> PinholeCamera:
    return PinholeCamera.from_calibration(camera.calibration.model, *camera.resolution, camera.hfov_deg)
