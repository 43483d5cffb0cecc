"""Labelled datasets from the simulator: frames as images plus one JSON label per frame."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from shared.errors import SimulatorError
from shared.layout import Facility
from shared.strict import StrictModel
from sim.scenario import FaultKind, Scenario
from sim.source import SimCamera, SimUrl
from sim.truth import TruthExtent, TruthPlate
from sim.world import World

LABELS_FILE = "labels.jsonl"
JPEG_QUALITY = 92


class FrameLabel(StrictModel):
    """Everything known about one dataset frame."""

    file: str
    camera_id: str
    track_id: str
    t: float
    captured_at: datetime
    daylight: float
    fault: FaultKind | None
    view: tuple[float, float]
    extents: list[TruthExtent]
    plates: list[TruthPlate]


def write_dataset(
    facility: Facility,
    scenario: Scenario,
    out_dir: Path,
    frames: int,
    cameras: Sequence[str] | None = None,
    image_format: str = "jpg",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render `frames` frames at random times and cameras; returns the labels file."""
    if image_format not in ("jpg", "png"):
        raise SimulatorError(f"image format {image_format!r}: choose jpg or png")
    camera_ids = list(cameras or sorted(facility.cameras))
    unknown = sorted(set(camera_ids) - set(facility.cameras))
    if unknown:
        raise SimulatorError(f"unknown camera(s) {unknown} in facility {facility.site}")
    world = World(facility, scenario)
    sources = {cid: SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False)) for cid in camera_ids}
    rng = np.random.default_rng([scenario.seed, 1])
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    labels_path = out_dir / LABELS_FILE
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if image_format == "jpg" else []
    with labels_path.open("w", encoding="utf-8") as labels:
        for index in range(frames):
            cid = camera_ids[int(rng.integers(len(camera_ids)))]
            t = round(float(rng.uniform(0, world.horizon_s)), 3)
            frame = sources[cid].frame_at(t)
            name = f"frames/{index:06d}_{cid}.{image_format}"
            if frame.image is not None and not cv2.imwrite(str(out_dir / name), frame.image, params):
                raise SimulatorError(f"could not write {out_dir / name}")
            cam = facility.cameras[cid]
            label = FrameLabel(
                file=name if frame.image is not None else "",
                camera_id=cid,
                track_id=cam.track,
                t=t,
                captured_at=frame.captured_at,
                daylight=world.daylight(t),
                fault=frame.fault,
                view=(cam.view.start_m, cam.view.end_m),
                extents=frame.extents,
                plates=frame.plates,
            )
            labels.write(label.model_dump_json() + "\n")
            if progress is not None:
                progress(1)
    return labels_path


def read_labels(path: Path) -> list[FrameLabel]:
    """Load a labels file written by `write_dataset`."""
    with path.open(encoding="utf-8") as handle:
        return [FrameLabel.model_validate_json(line) for line in handle if line.strip()]
