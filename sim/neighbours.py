"""Tracks parallel to a camera's own: where they lie in the camera's track frame, so that the
renderer draws their traffic and the ground truth says what of it a camera sees."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shared.layout import Facility, Track
from shared.projection import FloatArray
from sim.world import LocoState

# Parallel tracks this close to the camera's own are drawn with their traffic.
NEIGHBOUR_REACH_M = 25.0


@dataclass(frozen=True)
class Neighbour:
    """A track parallel to the camera's own: its lateral offset (positive to the left facing increasing
    metres) and where its metre 0 lies in own-track metres, running the same way or the other."""

    track_id: str
    offset_m: float
    zero_at_m: float
    same_direction: bool

    def to_own(self, state: LocoState) -> LocoState:
        """`state` in own-track metres (a track running the other way also turns the locomotive)."""
        if self.same_direction:
            return replace(state, start_m=self.zero_at_m + state.start_m, end_m=self.zero_at_m + state.end_m)
        return replace(
            state,
            start_m=self.zero_at_m - state.end_m,
            end_m=self.zero_at_m - state.start_m,
            reversed=not state.reversed,
        )


def neighbours_of(facility: Facility, track_id: str) -> list[Neighbour]:
    """Straight tracks parallel to straight `track_id` within NEIGHBOUR_REACH_M of it."""
    own = _straight(facility.tracks[track_id])
    if own is None:
        return []
    origin, direction = own
    found = []
    for other_id, track in sorted(facility.tracks.items()):
        other = _straight(track)
        if other_id == track_id or other is None:
            continue
        start, other_direction = other
        along = float(np.dot(direction, other_direction))
        if abs(abs(along) - 1.0) > 1e-6:
            continue
        rel = start - origin
        offset = float(direction[0] * rel[1] - direction[1] * rel[0])
        if 0.0 < abs(offset) <= NEIGHBOUR_REACH_M:
            found.append(Neighbour(other_id, offset, float(np.dot(direction, rel)), along > 0))
    return found


def _straight(track: Track) -> tuple[FloatArray, FloatArray] | None:
    """A straight track's site-plan start and unit direction (metre scale as surveyed); None if bent."""
    pts = np.asarray(track.polyline, dtype=np.float64)
    span = pts[-1] - pts[0]
    length = float(np.linalg.norm(span))
    if length == 0:
        return None
    direction = span / length
    normal = np.array([-direction[1], direction[0]])
    if np.abs((pts - pts[0]) @ normal).max() > 0.05:
        return None
    return pts[0], direction
