"""Training data for the LPE: simulator frames rectified into strips, with per-column targets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from shared.layout import Facility, load_facility
from shared.strip import STRIP_HEIGHT, STRIP_WIDTH, StripGeometry
from sim.scenario import Conditions, Lighting, Scenario
from sim.source import SimCamera, SimUrl
from sim.truth import TruthExtent
from sim.world import World

REPO = Path(__file__).resolve().parents[2]
LAYOUT = REPO / "examples" / "facility.yaml"
DATA_DIR = REPO / "data" / "lpe"
TRAIN_SEEDS = (101, 102, 103, 104)
VAL_SEED = 201
# Held-out seeds are never trained or validated on; the benchmark uses the same ones.
HELD_OUT_SEED = 901

# Width of the end-marker bumps in the targets, in columns (≈ 8 cm each).
EDGE_SIGMA_COLUMNS = 1.5
CHUNK = 32

# What the model is trained on: clock-driven day and night, noise, some blur, workers in view.
TRAIN_CONDITIONS = Conditions(
    noise_sigma=(1.0, 6.0), blur_sigma_px=(0.0, 1.5), motion_blur_px=(0.0, 5.0), workers_per_camera=0.8
)
# Held-out conditions for evaluation: seeds never trained on, and harder settings than training.
HELD_OUT_CONDITIONS: dict[str, Conditions] = {
    "day": Conditions(lighting=Lighting.DAY, workers_per_camera=0.3),
    "night": Conditions(lighting=Lighting.NIGHT, noise_sigma=(4.0, 8.0), workers_per_camera=0.3),
    "occlusion": Conditions(workers_per_camera=3.0),
    "blur": Conditions(blur_sigma_px=(1.5, 2.5), motion_blur_px=(3.0, 7.0), workers_per_camera=0.3),
}


@dataclass
class Samples:
    """Strips, their targets and the ground truth they came from."""

    strips: np.ndarray  # N×H×W×3 uint8 (BGR)
    targets: np.ndarray  # N×3×W float32: occupancy, start end, upper end
    camera_ids: list[str]
    truth: list[list[TruthExtent]]

    def save(self, path: Path) -> None:
        """Write to one .npz file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            strips=self.strips,
            targets=self.targets,
            camera_ids=np.array(self.camera_ids),
            truth=np.array([json.dumps([t.model_dump() for t in ts]) for ts in self.truth]),
        )

    @classmethod
    def load(cls, path: Path) -> Samples:
        """Read a file written by `save`."""
        data = np.load(path)
        truth = [[TruthExtent.model_validate(t) for t in json.loads(row)] for row in data["truth"]]
        return cls(data["strips"], data["targets"], [str(c) for c in data["camera_ids"]], truth)


def targets_for(geometry: StripGeometry, extents: list[TruthExtent]) -> np.ndarray:
    """Per-column occupancy and end-marker targets for one strip."""
    centres = np.arange(STRIP_WIDTH) + 0.5
    out = np.zeros((3, STRIP_WIDTH), np.float32)
    for e in extents:
        a, b = geometry.metres_to_column(e.start_m), geometry.metres_to_column(e.end_m)
        out[0] = np.maximum(out[0], ((centres >= a) & (centres < b)).astype(np.float32))
        for row, col, beyond in ((1, a, e.start_beyond_view), (2, b, e.end_beyond_view)):
            if not beyond:
                out[row] = np.maximum(out[row], np.exp(-0.5 * ((centres - col) / EDGE_SIGMA_COLUMNS) ** 2))
    return out


def _render_chunk(
    args: tuple[str, Scenario, list[tuple[str, float]]],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    layout, scenario, items = args
    facility = load_facility(layout)
    world = World(facility, scenario)
    sources: dict[str, SimCamera] = {}
    geometries: dict[str, StripGeometry] = {}
    strips = np.zeros((len(items), STRIP_HEIGHT, STRIP_WIDTH, 3), np.uint8)
    targets = np.zeros((len(items), 3, STRIP_WIDTH), np.float32)
    truths = []
    for i, (cid, t) in enumerate(items):
        if cid not in sources:
            sources[cid] = SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False))
            geometries[cid] = StripGeometry.for_camera(cid, facility.cameras[cid])
        frame = sources[cid].frame_at(t)
        assert frame.image is not None, "datasets are rendered without camera faults"
        strips[i] = geometries[cid].rectify(frame.image)
        targets[i] = targets_for(geometries[cid], frame.extents)
        truths.append(json.dumps([e.model_dump() for e in frame.extents]))
    return strips, targets, truths


def render_samples(layout: Path, scenario: Scenario, count: int, label: str = "rendering") -> Samples:
    """Render `count` strips at random cameras and times of `scenario`, on all cores."""
    facility: Facility = load_facility(layout)
    rng = np.random.default_rng([scenario.seed, 99])
    cameras = sorted(facility.cameras)
    horizon = scenario.horizon_h * 3600
    items = [(cameras[int(rng.integers(len(cameras)))], float(rng.uniform(0, horizon))) for _ in range(count)]
    chunks = [(str(layout), scenario, items[i : i + CHUNK]) for i in range(0, count, CHUNK)]
    parts = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, Progress() as progress:
        task = progress.add_task(label, total=count)
        for part in pool.map(_render_chunk, chunks):
            parts.append(part)
            progress.advance(task, len(part[0]))
    truth = [[TruthExtent.model_validate(t) for t in json.loads(row)] for part in parts for row in part[2]]
    return Samples(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        [cid for cid, _ in items],
        truth,
    )


def scenario_for(seed: int, conditions: Conditions, horizon_h: float = 72.0) -> Scenario:
    """A scenario with busy traffic so that most frames show locomotives."""
    return Scenario(seed=seed, horizon_h=horizon_h, conditions=conditions)


def cached(path: Path, make: Callable[[], Samples]) -> Samples:
    """Load `path`, or make the samples and save them there."""
    if path.exists():
        return Samples.load(path)
    samples = make()
    samples.save(path)
    return samples


def held_out_sets(data_dir: Path, frames: int) -> dict[str, Samples]:
    """The benchmark's held-out sets, one per condition."""
    return {
        name: cached(
            data_dir / f"heldout_{name}_{HELD_OUT_SEED}_{frames}.npz",
            lambda name=name, cond=cond, i=i: render_samples(
                LAYOUT, scenario_for(HELD_OUT_SEED + i, cond), frames, f"held-out {name}"
            ),
        )
        for i, (name, cond) in enumerate(HELD_OUT_CONDITIONS.items())
    }
