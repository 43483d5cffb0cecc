"""The LPE on camera placements drawn from the depot envelope (sim.placement.DEPOT_ENVELOPE) with
seeds never used for training: one row per placement, with the issue's targets per row.

Each placement is one camera beside its track, with neighbouring tracks and their traffic, in a look
of its own, rendered under the training's conditions; what a model claims to cover is its own
envelope.yaml, and a row outside it is expected to miss its targets.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lpe_scoring import Tally
from edge.lpe.decode import decode_strip
from edge.lpe.model_files import Precision
from edge.lpe.openvino_lpe import OpenVinoLpe
from shared.layout import Camera, load_facility
from shared.mounting import Mounting, mounting_of
from training.lpe.data import PLACEMENT_CONDITIONS, Samples, cached, placement_jobs, render_jobs

# Placement and scenario seeds from here up are the benchmark's; training draws below it.
PLACEMENT_SEED = 19_001


@dataclass(frozen=True)
class Target:
    """A figure of merit and the bound each placement's row must meet."""

    key: str
    label: str
    holds: Callable[[float, float], bool]
    bound: float
    fmt: str


TARGETS = (
    Target("occupancy_f1", "F1", operator.ge, 0.995, "{:.3f}"),
    Target("end_error_median_m", "end p50 m", operator.le, 0.03, "{:.3f}"),
    Target("end_error_p95_m", "end p95 m", operator.le, 0.10, "{:.2f}"),
    Target("beyond_view_accuracy", "beyond ok", operator.ge, 0.99, "{:.3f}"),
    Target("count_accuracy", "count ok", operator.ge, 0.99, "{:.3f}"),
    Target("empty_frames_clean", "empty clean", operator.ge, 0.995, "{:.3f}"),
    Target("neighbour_reported", "neighbour as own", operator.le, 0.005, "{:.3f}"),
)


@dataclass
class PlacementSet:
    """One drawn placement: its camera, its mounting and its rendered frames."""

    camera_id: str
    camera: Camera
    mounting: Mounting
    samples: Samples


def placement_sets(data_dir: Path, count: int, frames: int) -> list[PlacementSet]:
    """`count` placements with `frames` rendered strips each, cached under data_dir/placements/."""
    folder = data_dir / "placements"
    sets = []
    for job in placement_jobs(folder, PLACEMENT_SEED, count, frames, PLACEMENT_CONDITIONS):
        (camera_id, camera), *_ = load_facility(job.layout).cameras.items()
        samples = cached(
            folder / f"{camera_id}_{frames}.npz", lambda job=job, label=camera_id: render_jobs([job], label)
        )
        sets.append(PlacementSet(camera_id, camera, mounting_of(camera), samples))
    return sets


def placements_table(
    model_dir: Path, sets: list[PlacementSet], precisions: tuple[Precision, ...], inference: dict[str, Any]
) -> dict[str, dict[str, dict[str, float]]]:
    """Figures per precision and placement (camera id)."""
    cameras = {s.camera_id: s.camera for s in sets}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for precision in precisions:
        lpe = OpenVinoLpe(
            model_dir, cameras, precision=precision, batch=16, inference_precision=inference[precision]
        )
        results[precision] = {}
        for s in sets:
            tally = Tally()
            g = lpe.geometries[s.camera_id]
            scores = lpe.infer_strips(s.samples.strips, s.samples.valid, s.samples.metres_per_column)
            for column_scores, truth, neighbours in zip(
                scores, s.samples.truth, s.samples.neighbours, strict=True
            ):
                estimate = decode_strip(column_scores, g)
                tally.add((g.view_start_m, g.view_end_m), truth, estimate, neighbours)
            results[precision][s.camera_id] = tally.summary()
    return results


def placements_markdown(
    table: dict[str, dict[str, dict[str, float]]], mountings: dict[str, dict[str, float]]
) -> str:
    """One row per placement and precision: the mounting, each figure, and whether the row meets
    every target (a figure missing its bound is marked ✗)."""
    header = "| placement | height m | lateral m | hfov ° | view m | roll ° | precision | " + " | ".join(
        f"{t.label} ({'≥' if t.holds is operator.ge else '≤'} {t.bound:g})" for t in TARGETS
    )
    lines = [header + " | targets |", "|---" * (8 + len(TARGETS)) + "|"]
    for camera_id, m in mountings.items():
        for precision, rows in table.items():
            row = rows[camera_id]
            cells = []
            for t in TARGETS:
                value = row[t.key]
                # A figure with nothing to measure (no visible end: null in the JSON) meets no target.
                if value is None or value != value:
                    cells.append("– ✗")
                    continue
                cells.append(t.fmt.format(value) + ("" if t.holds(value, t.bound) else " ✗"))
            met = all("✗" not in c for c in cells)
            lines.append(
                f"| {camera_id} | {m['height_m']:g} | {m['lateral_m']:g} | {m['hfov_deg']:g} | "
                f"{m['view_m']:g} | {m['roll_deg']:g} | {precision} | "
                + " | ".join(cells)
                + f" | {'met' if met else 'missed'} |"
            )
    return "\n".join(lines)


def mounting_rows(sets: list[PlacementSet]) -> dict[str, dict[str, float]]:
    """Each placement's mounting, as the results and the card record it."""
    return {
        s.camera_id: {
            "height_m": s.mounting.height_m,
            "lateral_m": s.mounting.lateral_m,
            "hfov_deg": s.mounting.hfov_deg,
            "view_m": s.mounting.view_m,
            "roll_deg": s.mounting.roll_deg,
        }
        for s in sets
    }
