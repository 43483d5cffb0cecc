"""The position estimator interface the edge node runs, whatever implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# Frame is re-exported (`as`): the OpenVINO LPE imports it from here.
from shared.frames import Frame
from shared.layout import Camera
from shared.messages import LocoExtent, ModelRef


class PositionEstimator(Protocol):
    """Finds the locomotive extents in frames of known cameras."""

    @property
    def model(self) -> ModelRef:
        """Name and version reported with every detection."""
        ...

    def estimate(self, frames: Sequence[tuple[str, Frame]]) -> list[list[LocoExtent]]:
        """Extents per (camera id, BGR frame), in the same order; raises FrameError on a bad frame."""
        ...

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        """Read the next frames of `camera_id` (a camera it was built for) with `camera`'s calibration
        and view; a batch already being estimated finishes with the one it started with."""
        ...
