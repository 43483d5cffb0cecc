"""Between capture and inference: the latest sampled frame per camera (stale ones are replaced, not
queued, and counted) and the motion gate that spares inference on a still picture."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np
import numpy.typing as npt

from shared.frames import Frame

# Size of the picture the motion gate compares.
GATE_SIZE = (64, 36)
# Mean absolute change (grey levels) that counts as motion; sensor noise stays well below it.
MOTION_LEVEL = 2.0


@dataclass(frozen=True)
class Sampled:
    """A frame chosen for inference."""

    camera_id: str
    frame: Frame
    captured_at: datetime


class LatestFrames:
    """One slot per camera; a new frame replaces an unconsumed one and the replacement is counted."""

    def __init__(self, on_drop: Callable[[str], None]) -> None:
        self._slots: dict[str, Sampled] = {}
        self._ready = threading.Condition()
        self._on_drop = on_drop

    def put(self, camera_id: str, frame: Frame, captured_at: datetime) -> None:
        """Offer a sampled frame (called from capture threads)."""
        with self._ready:
            if camera_id in self._slots:
                self._on_drop(camera_id)
            self._slots[camera_id] = Sampled(camera_id, frame, captured_at)
            self._ready.notify()

    def take(self, timeout: float) -> list[Sampled]:
        """Every waiting frame, oldest capture first; waits up to `timeout` for the first one."""
        with self._ready:
            if not self._slots:
                self._ready.wait(timeout)
            taken, self._slots = list(self._slots.values()), {}
        return sorted(taken, key=lambda s: s.captured_at)


class MotionGate:
    """Decides per camera whether a frame needs inference: it changed, or it is time to reconfirm."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[npt.NDArray[np.float32], float]] = {}

    def needs_inference(self, camera_id: str, frame: Frame, now: float, reconfirm_s: float) -> bool:
        """Whether the frame differs from the camera's last inferred one, or that one is `reconfirm_s` old."""
        small = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), GATE_SIZE, interpolation=cv2.INTER_AREA)
        current = small.astype(np.float32)
        last = self._last.get(camera_id)
        if (
            last is not None
            and now - last[1] < reconfirm_s
            and float(np.abs(current - last[0]).mean()) < MOTION_LEVEL
        ):
            return False
        self._last[camera_id] = (current, now)
        return True
