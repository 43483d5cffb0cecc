"""Where the LPE can place a locomotive's end: each camera's seen stretch (its strip's seen columns,
shared.strip.SEEN_SHARE), and the stretches of a track's stations that no camera sees, which
`layout check` names (an end standing there is reported by every camera as beyond its view)."""

from __future__ import annotations

from functools import lru_cache

from shared.layout import Camera, Facility
from shared.strip import StripGeometry

Span = tuple[float, float]


def seen_stretch(camera: Camera) -> Span:
    """The track metres where the camera sees a locomotive's side."""
    # Estimators are built per flow and per past state asked for: the geometry once per camera.
    return _seen_of(camera.model_dump_json())


@lru_cache(maxsize=1024)
def _seen_of(camera_json: str) -> Span:
    return StripGeometry.for_camera("", Camera.model_validate_json(camera_json)).seen_m


def seen_stretches(facility: Facility, track_id: str) -> dict[str, Span]:
    """Per camera on the track, the track metres where it sees a locomotive's side."""
    return {cid: seen_stretch(cam) for cid, cam in facility.cameras_on_track(track_id).items()}


def union(spans: list[Span]) -> list[Span]:
    """The spans merged where they overlap or touch, by increasing metres."""
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def unseen_at_stations(facility: Facility, track_id: str, seen: list[Span]) -> list[Span]:
    """The stretches of the track's stations outside every span of `seen`, by increasing metres."""
    covered = union(seen)
    unseen: list[Span] = []
    for station in facility.stations_on_track(track_id).values():
        reach = station.start_m
        for lo, hi in covered:
            if hi <= reach or lo >= station.end_m:
                continue
            if lo > reach:
                unseen.append((reach, lo))
            reach = max(reach, hi)
        if reach < station.end_m:
            unseen.append((reach, station.end_m))
    return unseen
