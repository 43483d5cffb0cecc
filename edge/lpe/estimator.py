"""The position estimator interface the edge node runs, whatever implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# Frame is re-exported (`as`): the OpenVINO LPE imports it from here.
from shared.frames import Frame
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
