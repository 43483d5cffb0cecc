"""Training data for the LPE: simulator frames rectified into strips, with per-column targets.

The model must hold wherever a depot can mount a camera, so most training strips come from camera
placements drawn from the depot envelope (sim.placement), each beside its own track with neighbouring
tracks and their traffic, in a look of its own (floor, walls, pit, rails, lamps); the rest from the
example depot's cameras in the demo's look. Placement seeds here stay below the benchmark's.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rich.progress import Progress

from shared.layout import load_facility
from shared.strip import STRIP_HEIGHT, STRIP_WIDTH, StripGeometry
from sim.placement import DEPOT_ENVELOPE, draw_placements, placement_layout
from sim.scenario import Conditions, Lighting, Scenario
from sim.source import SimCamera, SimUrl
from sim.truth import TruthExtent, neighbour_extents
from sim.world import World

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
LAYOUT = REPO / "examples" / "facility.yaml"
DATA_DIR = REPO / "data" / "lpe"
# The example depot's scenarios (the demo's look) and the placement draws trained on.
TRAIN_SEEDS = (101, 102)
TRAIN_PLACEMENT_SEEDS = tuple(range(1001, 1025))
PLACEMENTS_PER_SEED = 12
VAL_SEED = 201
VAL_PLACEMENT_SEEDS = (1801, 1802)
# Held-out seeds are never trained or validated on; the benchmark uses the same ones.
HELD_OUT_SEED = 901

# Width of the end-marker bumps in the targets, in columns (≈ 8 cm each).
EDGE_SIGMA_COLUMNS = 1.5
CHUNK = 32
# Bumped when what the truth says changes, so that strips cached under an older rule are rendered
# again (3: an end outside the camera's seen columns is beyond view, at their border; SEEN_SHARE).
TRUTH_VERSION = 3

# What the model is trained on: clock-driven day and night, noise, some blur, workers in view.
TRAIN_CONDITIONS = Conditions(
    noise_sigma=(1.0, 6.0), blur_sigma_px=(0.0, 1.5), motion_blur_px=(0.0, 5.0), workers_per_camera=0.8
)
# Placements are also trained in varied looks; the example depot keeps the demo's.
PLACEMENT_CONDITIONS = TRAIN_CONDITIONS.model_copy(update={"varied_appearance": True})
# Held-out conditions for evaluation: seeds never trained on, and harder settings than training.
HELD_OUT_CONDITIONS: dict[str, Conditions] = {
    "day": Conditions(lighting=Lighting.DAY, workers_per_camera=0.3),
    "night": Conditions(lighting=Lighting.NIGHT, noise_sigma=(4.0, 8.0), workers_per_camera=0.3),
    "occlusion": Conditions(workers_per_camera=3.0),
    "blur": Conditions(blur_sigma_px=(1.5, 2.5), motion_blur_px=(3.0, 7.0), workers_per_camera=0.3),
}


@dataclass
class Samples:
    """Strips with what the model reads beside them, their targets and the ground truth."""

    strips: np.ndarray  # N×H×W×3 uint8 (BGR)
    valid: np.ndarray  # N×H×W uint8: 1 where the cell lies inside the image
    metres_per_column: np.ndarray  # N×1 float32
    targets: np.ndarray  # N×3×W float32: occupancy, start end, upper end
    camera_ids: list[str]
    truth: list[list[TruthExtent]]
    # What of neighbouring tracks' locomotives lies along the view (must not be reported).
    neighbours: list[list[TruthExtent]]

    def save(self, path: Path) -> None:
        """Write to one .npz file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            strips=self.strips,
            valid=self.valid,
            metres_per_column=self.metres_per_column,
            targets=self.targets,
            camera_ids=np.array(self.camera_ids),
            truth=np.array([_extents_json(ts) for ts in self.truth]),
            neighbours=np.array([_extents_json(ts) for ts in self.neighbours]),
            truth_version=np.array(TRUTH_VERSION),
        )

    @classmethod
    def load(cls, path: Path) -> Samples:
        """Read a file written by `save`."""
        data = np.load(path)
        if "truth_version" not in data or int(data["truth_version"]) != TRUTH_VERSION:
            raise KeyError(f"truth version {TRUTH_VERSION}")
        return cls(
            data["strips"],
            data["valid"],
            data["metres_per_column"],
            data["targets"],
            [str(c) for c in data["camera_ids"]],
            [_extents(row) for row in data["truth"]],
            [_extents(row) for row in data["neighbours"]],
        )

    def subset(self, idx: np.ndarray) -> Samples:
        """The samples at indices `idx`, in that order."""
        return Samples(
            self.strips[idx],
            self.valid[idx],
            self.metres_per_column[idx],
            self.targets[idx],
            [self.camera_ids[i] for i in idx],
            [self.truth[i] for i in idx],
            [self.neighbours[i] for i in idx],
        )

    @classmethod
    def joined(cls, parts: list[Samples]) -> Samples:
        """One set of every part's samples, in order."""
        return cls(
            np.concatenate([p.strips for p in parts]),
            np.concatenate([p.valid for p in parts]),
            np.concatenate([p.metres_per_column for p in parts]),
            np.concatenate([p.targets for p in parts]),
            [c for p in parts for c in p.camera_ids],
            [t for p in parts for t in p.truth],
            [t for p in parts for t in p.neighbours],
        )


def _extents_json(extents: list[TruthExtent]) -> str:
    return json.dumps([t.model_dump() for t in extents])


def _extents(row: str) -> list[TruthExtent]:
    return [TruthExtent.model_validate(t) for t in json.loads(str(row))]


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


def _render_chunk(args: tuple[str, Scenario, list[tuple[str, float]]]) -> Samples:
    layout, scenario, items = args
    facility = load_facility(layout)
    world = World(facility, scenario)
    sources: dict[str, SimCamera] = {}
    geometries: dict[str, StripGeometry] = {}
    n = len(items)
    strips = np.zeros((n, STRIP_HEIGHT, STRIP_WIDTH, 3), np.uint8)
    valid = np.zeros((n, STRIP_HEIGHT, STRIP_WIDTH), np.uint8)
    scale = np.zeros((n, 1), np.float32)
    targets = np.zeros((n, 3, STRIP_WIDTH), np.float32)
    truths, neighbours = [], []
    for i, (cid, t) in enumerate(items):
        if cid not in sources:
            sources[cid] = SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False))
            geometries[cid] = StripGeometry.for_camera(cid, facility.cameras[cid])
        frame = sources[cid].frame_at(t)
        assert frame.image is not None, "datasets are rendered without camera faults"
        geometry = geometries[cid]
        strips[i] = geometry.rectify(frame.image)
        valid[i] = geometry.valid
        scale[i] = geometry.metres_per_column
        targets[i] = targets_for(geometry, frame.extents)
        truths.append(frame.extents)
        tracks = sources[cid].renderer.neighbours
        neighbours.append(neighbour_extents(facility, cid, tracks, world, t))
    return Samples(strips, valid, scale, targets, [cid for cid, _ in items], truths, neighbours)


@dataclass(frozen=True)
class Job:
    """`count` strips at random cameras and times of `scenario` on the layout at `layout`."""

    layout: Path
    scenario: Scenario
    count: int


def render_jobs(jobs: list[Job], label: str = "rendering") -> Samples:
    """Render every job's strips on all cores, in job order."""
    chunks = []
    for job in jobs:
        facility = load_facility(job.layout)
        rng = np.random.default_rng([job.scenario.seed, 99])
        cameras = sorted(facility.cameras)
        horizon = job.scenario.horizon_h * 3600
        items = [
            (cameras[int(rng.integers(len(cameras)))], float(rng.uniform(0, horizon)))
            for _ in range(job.count)
        ]
        chunks += [(str(job.layout), job.scenario, items[i : i + CHUNK]) for i in range(0, job.count, CHUNK)]
    parts = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool, Progress() as progress:
        task = progress.add_task(label, total=sum(job.count for job in jobs))
        for part in pool.map(_render_chunk, chunks):
            parts.append(part)
            progress.advance(task, len(part.strips))
    return Samples.joined(parts)


def render_samples(layout: Path, scenario: Scenario, count: int, label: str = "rendering") -> Samples:
    """Render `count` strips at random cameras and times of `scenario`, on all cores."""
    return render_jobs([Job(layout, scenario, count)], label)


def placement_jobs(folder: Path, seed: int, count: int, frames: int, conditions: Conditions) -> list[Job]:
    """One job per placement of `count` drawn from the depot envelope with `seed`, `frames` strips
    each, its layout (with its neighbouring tracks) written under `folder` for the render workers."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, (placement, entry) in enumerate(draw_placements(DEPOT_ENVELOPE, count, seed)):
        (camera_id,) = entry
        layout = folder / f"{camera_id}.yaml"
        layout.write_text(yaml.safe_dump(placement_layout(entry, neighbours_m=placement.neighbours_m)))
        jobs.append(Job(layout, scenario_for(seed * 100 + i, conditions), frames))
    return jobs


def scenario_for(seed: int, conditions: Conditions, horizon_h: float = 72.0) -> Scenario:
    """A scenario with busy traffic so that most frames show locomotives."""
    return Scenario(seed=seed, horizon_h=horizon_h, conditions=conditions)


def cached(path: Path, make: Callable[[], Samples]) -> Samples:
    """Load `path`, or make the samples and save them there."""
    if path.exists():
        try:
            return Samples.load(path)
        except KeyError as exc:  # written by an earlier version, without what the model now reads
            log.info("%s lacks %s: rendering it again", path, exc)
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
