"""Camera placements: where a column-mounted camera beside a track can usefully be (the depot
envelope), drawn at random for training and benchmarks, and turned into a layout's camera entry with
the calibration a surveyor would measure (the pixels of rail-head marks at known track metres)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shared.calibration import RAIL_OFFSET_M
from shared.envelope import Envelope, Range
from shared.projection import PinholeCamera

RESOLUTION = (1280, 720)
# The camera's aim: a point this high above the rail head, ahead of the camera along the track.
AIM_HEIGHT_M = 1.0

# Where a camera can usefully be in a real depot (issue 19): on a column or wall 3–15 m high, 2–15 m
# either side of the track, any lens from 35° to 100°, any aim that shows at least 5 m of track,
# mounted within ±5° of level. What a model is measured on is its own envelope (envelope.yaml).
DEPOT_ENVELOPE = Envelope(
    measured_on="where a depot's cameras can be mounted (the LPE's target, not a measurement)",
    height_m=Range(low=3, high=15),
    lateral_m=Range(low=2, high=15),
    sides=["left", "right"],
    hfov_deg=Range(low=35, high=100),
    min_view_m=5,
    max_roll_deg=5,
)


@dataclass(frozen=True)
class Placement:
    """A camera's placement beside a straight track along the x axis."""

    along_m: float  # the camera's position along the track
    height_m: float
    lateral_m: float  # positive to the left facing increasing metres
    hfov_deg: float
    aim_ahead_m: float  # how far along the track ahead of the camera it is aimed
    roll_deg: float = 0.0
    # Lateral offsets of parallel tracks with their own traffic (same sign convention as lateral_m).
    neighbours_m: tuple[float, ...] = ()

    def camera(self, resolution: tuple[int, int] = RESOLUTION) -> PinholeCamera:
        """The pinhole camera this placement is."""
        target = (self.along_m + self.aim_ahead_m, 0.0, AIM_HEIGHT_M)
        position = (self.along_m, self.lateral_m, self.height_m)
        return PinholeCamera.look_at(position, target, *resolution, self.hfov_deg, self.roll_deg)


def view_of(camera: PinholeCamera, track_length_m: float) -> tuple[float, float] | None:
    """The stretch of the track's centreline inside the image, trimmed 5 cm each end; None if none."""
    s = np.arange(-10, track_length_m + 10, 0.01)
    uv, depth = camera.project(np.stack([s, np.zeros_like(s), np.zeros_like(s)], axis=1))
    w, h = camera.width, camera.height
    inside = (depth > 0.3) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    inside &= (s >= 0) & (s <= track_length_m)
    if not inside.any():
        return None
    return round(float(s[inside].min()) + 0.05, 1), round(float(s[inside].max()) - 0.05, 1)


def camera_entry(
    camera_id: str,
    track: str,
    node: str,
    placement: Placement,
    track_length_m: float,
    *,
    name: str = "",
    marks_inset_m: tuple[float, float] | None = None,
) -> dict[str, Any] | None:
    """The layout entry of a camera at `placement`: its view of the track and three pairs of surveyed
    rail-head marks projected from it, the first and last `marks_inset_m` inside the view (by default
    up to 2 m); None when it sees too little of the track to survey (under 5 m, or a mark off the
    image)."""
    camera = placement.camera()
    view = view_of(camera, track_length_m)
    if view is None or view[1] - view[0] < 5.0:
        return None
    inset = marks_inset_m or (min(2.0, (view[1] - view[0]) / 6),) * 2
    marks = np.linspace(view[0] + inset[0], view[1] - inset[1], 3)
    ground = [(float(m), side * RAIL_OFFSET_M, 0.0) for m in marks for side in (-1, 1)]
    pixels, depth = camera.project(np.array(ground))
    w, h = camera.width, camera.height
    if not (((pixels >= 0) & (pixels < (w, h))).all() and (depth > 0.3).all()):
        return None
    hfov = round(placement.hfov_deg, 2)
    return {
        camera_id: {
            "name": name or f"{track} camera {camera_id}",
            "node": node,
            "source": f"sim://{camera_id}",
            "track": track,
            "view": {"start_m": view[0], "end_m": view[1]},
            "resolution": [w, h],
            "hfov_deg": hfov,
            "calibration": {
                "points": [
                    {
                        "image": [round(float(u), 1), round(float(v), 1)],
                        "track_m": round(g[0], 2),
                        "offset_m": g[1],
                    }
                    for (u, v), g in zip(pixels, ground, strict=True)
                ]
            },
        }
    }


def draw_placements(
    envelope: Envelope, count: int, seed: int, track_length_m: float = 70.0
) -> list[tuple[Placement, dict[str, Any]]]:
    """`count` placements drawn uniformly from `envelope` (a side of the track, height, distance,
    lens, aim, roll), each with its camera entry (id `P<seed>-<n>`); a draw whose camera sees less of
    the track than the envelope's least view, or cannot be surveyed, is drawn again."""
    rng = np.random.default_rng([seed, 19])
    drawn: list[tuple[Placement, dict[str, Any]]] = []
    while len(drawn) < count:
        side = 1.0 if rng.choice(envelope.sides) == "left" else -1.0
        height = float(rng.uniform(envelope.height_m.low, envelope.height_m.high))
        lateral = side * float(rng.uniform(envelope.lateral_m.low, envelope.lateral_m.high))
        # Aim ahead by a share of the slant distance, so that low and high cameras alike look down
        # the track rather than across it or at their own column.
        slant = math.hypot(height, lateral)
        placement = Placement(
            along_m=float(rng.uniform(4.0, 20.0)),
            height_m=round(height, 2),
            lateral_m=round(lateral, 2),
            hfov_deg=round(float(rng.uniform(envelope.hfov_deg.low, envelope.hfov_deg.high)), 1),
            aim_ahead_m=round(float(rng.uniform(0.0, 1.5)) * slant, 2),
            roll_deg=round(float(rng.uniform(-envelope.max_roll_deg, envelope.max_roll_deg)), 2),
        )
        entry = camera_entry(f"P{seed}-{len(drawn) + 1}", "T1", "edge-bay1", placement, track_length_m)
        if entry is None:
            continue
        (camera,) = entry.values()
        if camera["view"]["end_m"] - camera["view"]["start_m"] >= envelope.min_view_m:
            # Its own generator, so that the mountings drawn for a seed stay what they were.
            tracks = neighbour_tracks(placement.lateral_m, np.random.default_rng([seed, 23, len(drawn)]))
            drawn.append((replace(placement, neighbours_m=tracks), entry))
    return drawn


def neighbour_tracks(lateral_m: float, rng: np.random.Generator) -> tuple[float, ...]:
    """Parallel tracks beside a camera's own, as depots lay them (5–6.5 m apart): usually one or two
    beyond it, sometimes one behind the camera's column. A track between the camera and its own is
    not drawn: whenever occupied it hides the own track, a mounting no model can serve."""
    side = 1.0 if lateral_m > 0 else -1.0
    tracks: list[float] = []
    if rng.random() < 0.85:
        spacing = float(rng.uniform(5.0, 6.5))
        tracks.append(-side * spacing)
        if rng.random() < 0.4:
            tracks.append(-side * 2 * spacing)
    if rng.random() < 0.35:
        tracks.append(side * (abs(lateral_m) + float(rng.uniform(2.5, 6.0))))
    return tuple(round(t, 2) for t in tracks)


def placement_layout(
    entry: dict[str, Any], track_length_m: float = 70.0, neighbours_m: tuple[float, ...] = ()
) -> dict[str, Any]:
    """A depot of track T1 (two stations, one edge node) watched by the camera of `entry`, with
    parallel tracks N1, N2, … at `neighbours_m` (positive to the left facing increasing metres), each
    with stations and traffic of its own."""
    offsets = {"T1": 0.0} | {f"N{i + 1}": offset for i, offset in enumerate(neighbours_m)}
    return {
        "site": "placements",
        "name": "One camera beside its track",
        "tracks": {
            track: {
                "name": f"Track {track}",
                "length_m": track_length_m,
                "polyline": [[0.0, offset], [track_length_m, offset]],
            }
            for track, offset in offsets.items()
        },
        "stations": {
            f"{track}-{name}": {"name": f"pit {name}", "track": track, "start_m": start, "end_m": end}
            for track in offsets
            for name, start, end in (("A", 2.5, 26.0), ("B", 27.0, 50.5))
        },
        "nodes": {"edge-bay1": {"name": "Edge box"}},
        "cameras": entry,
    }
