"""Regenerate examples/facility.yaml: a four-bay diesel depot with sixteen calibrated cameras.

The cameras are placed in 3-D like column-mounted cameras beside each track; their calibration points
are what a surveyor would measure: the pixels of rail-head marks at known track metres. Run
``python examples/make_facility.py`` after changing the placement below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from shared.layout import parse_facility
from shared.projection import PinholeCamera

RAIL_OFFSET_M = 0.76  # half of the 1520 mm gauge
TRACK_SPACING_M = 12.0
TRACK_LENGTH_M = 70.0
CAMERA_SPACING_M = 12.0
FIRST_CAMERA_M = 4.0
RESOLUTION = (1280, 720)

BAYS = [
    # track id, name, camera height, lateral offset, hfov
    ("T1", "Bay 1 (diesel, TR-1)", 8.0, -6.0, 60.0),
    ("T2", "Bay 2 (diesel, TR-2)", 8.0, -6.0, 60.0),
    ("T3", "Bay 3 (TR-3, wheel lathe)", 8.5, -6.2, 58.0),
    ("T4", "Bay 4 (shunters, TO-2)", 8.5, -6.2, 58.0),
]
STATIONS = [("A", 2.5, 26.0, "TR-{n} pit A"), ("B", 27.0, 50.5, "TR-{n} pit B")]


def camera_entry(track: str, node: str, index: int, height: float, offset: float, hfov: float) -> dict:
    """The layout entry of camera `index` beside `track`: its view of the track and three pairs of
    surveyed rail-head marks, projected from its placement."""
    s_cam = FIRST_CAMERA_M + index * CAMERA_SPACING_M
    cam = PinholeCamera.look_at((s_cam, offset, height), (s_cam + 3.0, 0.0, 1.0), *RESOLUTION, hfov)
    s = np.arange(-10, TRACK_LENGTH_M + 10, 0.01)
    uv, depth = cam.project(np.stack([s, np.zeros_like(s), np.zeros_like(s)], axis=1))
    w, h = RESOLUTION
    inside = (depth > 0.3) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    lo, hi = float(s[inside].min()), float(s[inside].max())
    view = (round(lo + 0.05, 1), round(hi - 0.05, 1))
    marks = np.linspace(view[0] + 2.5, view[1] - 2.0, 3)
    ground = [(float(m), side * RAIL_OFFSET_M, 0.0) for m in marks for side in (-1, 1)]
    pixels, _ = cam.project(np.array(ground))
    assert ((pixels >= 0) & (pixels < RESOLUTION)).all(), f"a survey mark of {track} #{index} is off-image"
    cam_id = f"{track}-C{index + 1}"
    return {
        cam_id: {
            "name": f"{track} column {index + 1}",
            "node": node,
            "source": f"sim://{cam_id}",
            "track": track,
            "view": {"start_m": view[0], "end_m": view[1]},
            "resolution": list(RESOLUTION),
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


def build(bays: int = len(BAYS)) -> dict:
    """The depot as a layout document; more bays than the four described repeat their placement
    (the benchmarks' large depots)."""
    tracks, stations, nodes, cameras = {}, {}, {}, {}
    for n in range(1, bays + 1):
        template_track, name, height, offset, hfov = BAYS[(n - 1) % len(BAYS)]
        track = template_track if n <= len(BAYS) else f"T{n}"
        name = name if n <= len(BAYS) else f"Bay {n}"
        y = (n - 1) * TRACK_SPACING_M
        tracks[track] = {
            "name": name,
            "length_m": TRACK_LENGTH_M,
            "polyline": [[0.0, y], [TRACK_LENGTH_M, y]],
        }
        for suffix, start, end, label in STATIONS:
            stations[f"{track}-{suffix}"] = {
                "name": label.format(n=n),
                "track": track,
                "start_m": start,
                "end_m": end,
            }
        node = f"edge-bay{n}"
        nodes[node] = {"name": f"Edge box, bay {n}", "host": f"edge-bay{n}.depot.local"}
        for i in range(4):
            cameras.update(camera_entry(track, node, i, height, offset, hfov))
    return {
        "site": "depot-north",
        "name": "North locomotive repair depot",
        "tracks": tracks,
        "stations": stations,
        "nodes": nodes,
        "cameras": cameras,
    }


class _Dumper(yaml.SafeDumper):
    """Writes short lists of numbers on one line, as a person would."""


def _list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flow = all(isinstance(i, int | float) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(list, _list)


def main() -> None:
    """Build the layout, validate it and write examples/facility.yaml, headed by this docstring's first
    line."""
    data = build()
    parse_facility(data, "generated facility")
    header = Path(__file__).read_text().split('"""')[1].strip().splitlines()[0]
    out = Path(__file__).with_name("facility.yaml")
    out.write_text(
        f"# {header}\n# Generated by examples/make_facility.py; edit the placement there.\n"
        + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=120)
    )


if __name__ == "__main__":
    main()
