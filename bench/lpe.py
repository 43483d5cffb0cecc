"""LPE benchmark: accuracy on held-out simulator data and speed on this machine, FP32 and INT8.

    python -m bench.lpe                       # prints the table, writes bench/results/lpe.json
    python -m bench.lpe --update-card         # also rewrites the model card's figures
    python -m bench.lpe --only placements     # just the placements section (--placements N)

Accuracy uses held-out seeds and harder conditions than training (night, heavy occlusion, blur).
Speed compares the full runtime (rectify + infer + decode, batched and asynchronous) with a raw
OpenVINO infer loop on the same IR, batch and settings, in the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov
from rich.console import Console
from rich.table import Table

from bench import prerequisites
from bench.lpe_placements import (
    PLACEMENT_SEED,
    mounting_rows,
    placement_sets,
    placements_markdown,
    placements_table,
)
from bench.lpe_scoring import Tally
from edge.lpe.decode import decode_strip
from edge.lpe.model_files import Precision, model_path
from edge.lpe.openvino_lpe import INPUT_SHAPE, OpenVinoLpe
from shared.envelope import ENVELOPE_FILE, load_envelope
from shared.layout import load_facility
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from training.lpe.data import DATA_DIR, HELD_OUT_CONDITIONS, LAYOUT, Samples, held_out_sets

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "ir_models" / "lpe" / "2.0.0"
RESULTS = REPO / "bench" / "results" / "lpe.json"
CARD_TEMPLATE = "MODEL_CARD.md.in"
PRECISIONS: tuple[Precision, ...] = ("fp32", "int8")
# FP32 IR runs at f32 so its numbers are comparable across CPUs (the default here is bf16 on AMX).
INFERENCE_PRECISION = {"fp32": "f32", "int8": None}
NODE_CAMERAS = 8
SECTIONS = ("accuracy", "speed", "placements")
console = Console(width=200)


def accuracy_table(model_dir: Path, held_out: dict[str, Samples]) -> dict[str, dict[str, dict[str, float]]]:
    """Accuracy per precision and condition, plus 'all' over every held-out frame."""
    facility = load_facility(LAYOUT)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for precision in PRECISIONS:
        lpe = OpenVinoLpe(
            model_dir,
            facility.cameras,
            precision=precision,
            batch=16,
            inference_precision=INFERENCE_PRECISION[precision],
        )
        overall = Tally()
        results[precision] = {}
        for name, samples in held_out.items():
            tally = Tally()
            scores = lpe.infer_strips(samples.strips, samples.valid, samples.metres_per_column)
            for cid, column_scores, truth, neighbours in zip(
                samples.camera_ids, scores, samples.truth, samples.neighbours, strict=True
            ):
                g = lpe.geometries[cid]
                estimate = decode_strip(column_scores, g)
                for t in (tally, overall):
                    t.add((g.view_start_m, g.view_end_m), truth, estimate, neighbours)
            results[precision][name] = tally.summary()
        results[precision]["all"] = overall.summary()
    return results


def _node_frames(seconds_apart: float = 1800.0, count: int = 4) -> list[tuple[str, np.ndarray]]:
    facility = load_facility(LAYOUT)
    world = World(facility, Scenario(seed=77, horizon_h=24))
    cameras = sorted(facility.cameras)[:NODE_CAMERAS]
    frames = []
    for k in range(count):
        for cid in cameras:
            image = SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False)).frame_at(
                36000 + k * seconds_apart
            )
            assert image.image is not None
            frames.append((cid, image.image))
    return frames


def speed_table(model_dir: Path, seconds: float, requests: int = 2) -> dict[str, dict[str, float]]:
    """Frames per second: raw infer loop vs the full runtime, same IR, batch and settings."""
    facility = load_facility(LAYOUT)
    frames = _node_frames()
    results: dict[str, dict[str, float]] = {}
    for precision in PRECISIONS:
        lpe = OpenVinoLpe(
            model_dir,
            facility.cameras,
            precision=precision,
            batch=NODE_CAMERAS,
            requests=requests,
            inference_precision=INFERENCE_PRECISION[precision],
        )
        strips = np.random.default_rng(0).integers(0, 255, (NODE_CAMERAS, *INPUT_SHAPE), dtype=np.uint8)
        batch = lpe.batch_inputs(
            strips, *lpe.geometry_inputs([lpe.geometries[cid] for cid, _ in frames[:NODE_CAMERAS]])
        )
        raw_queue = ov.AsyncInferQueue(lpe.compiled, requests)
        batches, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            raw_queue.start_async(batch)
            batches += 1
        raw_queue.wait_all()
        raw_fps = batches * NODE_CAMERAS / (time.perf_counter() - start)

        lpe.estimate(frames)  # warm-up
        lpe.times = type(lpe.times)()
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            lpe.estimate(frames)
            done += len(frames)
        elapsed = time.perf_counter() - start
        latencies = []
        for cid, frame in frames[:NODE_CAMERAS]:
            t0 = time.perf_counter()
            lpe.estimate([(cid, frame)])
            latencies.append(time.perf_counter() - t0)
        size = sum(
            p.stat().st_size
            for p in (model_path(model_dir, precision), model_path(model_dir, precision).with_suffix(".bin"))
        )
        results[precision] = {
            "raw_fps": raw_fps,
            "runtime_fps": done / elapsed,
            "ratio": done / elapsed / raw_fps,
            "latency_ms_one_frame": 1000 * float(np.median(latencies)),
            "rectify_ms_per_frame": 1000 * lpe.times.rectify / max(lpe.times.frames, 1),
            "infer_wait_ms_per_frame": 1000 * lpe.times.infer_wait / max(lpe.times.frames, 1),
            "decode_ms_per_frame": 1000 * lpe.times.decode / max(lpe.times.frames, 1),
            "ir_megabytes": size / 1e6,
            "batch": NODE_CAMERAS,
            "requests": requests,
        }
        results[precision]["inference_precision"] = lpe.inference_precision  # type: ignore[assignment]
    return results


ACCURACY_ROWS = [
    ("occupancy_f1", "occupancy F1 (≥ 0.98)", "{:.4f}"),
    ("end_error_median_m", "visible end error median, m (≤ 0.3)", "{:.3f}"),
    ("end_error_p95_m", "visible end error p95, m (≤ 1.0)", "{:.3f}"),
    ("ends_missed", "visible ends missed", "{:.0f}"),
    ("beyond_view_accuracy", "beyond-view flags correct", "{:.4f}"),
    ("empty_frames_clean", "empty frames without a false loco (≥ 0.99)", "{:.4f}"),
    ("count_accuracy", "frames with the right locomotive count", "{:.4f}"),
    ("neighbour_reported", "frames with a neighbouring track's locomotive reported as own", "{:.4f}"),
    ("frames", "frames", "{:.0f}"),
]
SPEED_ROWS = [
    ("raw_fps", "raw OpenVINO infer loop, frames/s (≥ 200)", "{:.0f}"),
    ("runtime_fps", "runtime: rectify + infer + decode, frames/s", "{:.0f}"),
    ("ratio", "runtime / raw (≥ 0.5)", "{:.2f}"),
    ("latency_ms_one_frame", "latency of one frame, ms", "{:.2f}"),
    ("rectify_ms_per_frame", "  rectify, ms/frame", "{:.3f}"),
    ("infer_wait_ms_per_frame", "  waiting for inference, ms/frame", "{:.3f}"),
    ("decode_ms_per_frame", "  decode (in callbacks), ms/frame", "{:.3f}"),
    ("ir_megabytes", "IR size, MB", "{:.2f}"),
    ("inference_precision", "inference precision", "{}"),
]


def strict_json(value: Any) -> Any:
    """`value` with every NaN (a figure with nothing to measure, e.g. no visible end) as null, which
    strict JSON readers accept where they refuse NaN."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def accuracy_markdown(accuracy: dict[str, dict[str, dict[str, float]]]) -> str:
    """The accuracy table as Markdown: one column per precision × condition."""
    conditions = ["all", *HELD_OUT_CONDITIONS]
    header = "| metric | " + " | ".join(f"{p} {c}" for p in PRECISIONS for c in conditions) + " |"
    lines = [header, "|---" * (1 + len(PRECISIONS) * len(conditions)) + "|"]
    for key, label, fmt in ACCURACY_ROWS:
        # A figure an older version's benchmark did not measure, or with nothing to measure, is "–".
        cells = [
            "–" if accuracy[p][c].get(key) is None else fmt.format(accuracy[p][c][key])
            for p in PRECISIONS
            for c in conditions
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_markdown(speed: dict[str, dict[str, Any]]) -> str:
    """The speed table as Markdown."""
    lines = ["| measure | " + " | ".join(PRECISIONS) + " |", "|---" * (1 + len(PRECISIONS)) + "|"]
    for key, label, fmt in SPEED_ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt.format(speed[p][key]) for p in PRECISIONS) + " |")
    return "\n".join(lines)


def envelope_markdown(model_dir: Path) -> str:
    """The model's mounting envelope (its envelope.yaml) as the card shows it."""
    envelope = load_envelope(model_dir)
    if envelope is None:
        return f"(none declared: {ENVELOPE_FILE} is missing, so no camera's mounting is checked)"
    sides = " or ".join(envelope.sides)
    rows = [
        ("height above the rail head", f"{envelope.height_m.low:g}–{envelope.height_m.high:g} m"),
        (
            "distance from the track's centreline",
            f"{envelope.lateral_m.low:g}–{envelope.lateral_m.high:g} m, {sides} of the track",
        ),
        ("horizontal field of view", f"{envelope.hfov_deg.low:g}–{envelope.hfov_deg.high:g}°"),
        ("track in view (the aim sets it)", f"at least {envelope.min_view_m:g} m"),
        ("roll", f"within ±{envelope.max_roll_deg:g}°"),
    ]
    lines = [
        f"Measured on {envelope.measured_on} (`{ENVELOPE_FILE}`). `depotwatch layout check` and "
        "`depotwatch edge check` name each camera mounted outside it.",
        "",
        "| quantity | envelope |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
    ]
    if envelope.notes:
        lines += ["", " ".join(envelope.notes.split())]
    return "\n".join(lines)


def placements_card(placements: dict[str, Any] | None) -> str:
    """The placements section of the card, from what the benchmark recorded."""
    if not placements:
        return "(not measured yet: run `python -m bench.lpe --only placements --update-card`)"
    return (
        f"{len(placements['mountings'])} placements drawn from the depot envelope (sim.placement, seed "
        f"{placements['seed']}, never trained on), {placements['frames']} frames each: each camera "
        "beside its track with neighbouring tracks and their traffic, in a look of its own, under the "
        "training's conditions. A row outside this model's envelope is expected to miss its targets; "
        "*neighbour as own* is the share of frames with a neighbouring track's locomotive in view where "
        "one was reported on this track.\n\n"
        + placements_markdown(placements["table"], placements["mountings"])
    )


def write_model_card(
    model_dir: Path,
    accuracy: dict[str, dict[str, dict[str, float]]] | None,
    training: dict[str, Any] | None,
    speed: dict[str, dict[str, Any]] | None,
    placements: dict[str, Any] | None = None,
) -> None:
    """Merge new figures into metrics.json and render MODEL_CARD.md from it."""
    metrics_path = model_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    for key, value in (
        ("accuracy", accuracy),
        ("training", training),
        ("speed", speed),
        ("placements", placements),
    ):
        if value is not None:
            metrics[key] = value
    metrics = strict_json(metrics)
    metrics_path.write_text(json.dumps(metrics, indent=2, allow_nan=False))
    # Each version keeps the text of its card beside it: what it reads, how it was trained.
    template = (model_dir / CARD_TEMPLATE).read_text()
    card = template.format(
        version=model_dir.name,
        accuracy=accuracy_markdown(metrics["accuracy"]) if "accuracy" in metrics else "(not measured yet)",
        speed=speed_markdown(metrics["speed"])
        if "speed" in metrics
        else "(run `python -m bench.lpe --update-card`)",
        training=json.dumps(metrics.get("training", {}), indent=2),
        envelope=envelope_markdown(model_dir),
        placements=placements_card(metrics.get("placements")),
    )
    (model_dir / "MODEL_CARD.md").write_text(card)


def _print(title: str, markdown: str) -> None:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if not line.startswith("|---")]
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column.strip())
    for row in rows[1:]:
        table.add_row(*(cell.strip() for cell in row))
    console.print(table)


def main() -> None:
    """Measure the LPE on the held-out sets and on this machine; print the tables, write the results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--frames", type=int, default=400, help="Held-out frames per condition.")
    parser.add_argument("--seconds", type=float, default=5.0, help="Duration of each speed measurement.")
    parser.add_argument("--update-card", action="store_true", help="Rewrite the model card's figures.")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="Measure only this section (repeatable)."
    )
    parser.add_argument("--placements", type=int, default=12, help="Placements drawn from the envelope.")
    parser.add_argument("--placement-frames", type=int, default=150, help="Frames per placement.")
    args = parser.parse_args()
    prerequisites.require(
        "bench.lpe",
        [
            prerequisites.ir_model(
                model_path(args.model_dir, precision),
                f"pass --model-dir a folder holding lpe_fp32 and lpe_int8 (shipped: {MODEL_DIR}; "
                "`make train-lpe` rebuilds them)",
            )
            for precision in PRECISIONS
        ],
    )
    sections = set(args.only or SECTIONS)
    accuracy = speed = placements = None
    if "accuracy" in sections:
        accuracy = accuracy_table(args.model_dir, held_out_sets(DATA_DIR, args.frames))
        _print(f"LPE accuracy, held-out simulator data ({args.model_dir.name})", accuracy_markdown(accuracy))
    if "speed" in sections:
        speed = speed_table(args.model_dir, args.seconds)
        _print(f"LPE speed on this machine, batch {NODE_CAMERAS} (a node's cameras)", speed_markdown(speed))
    if "placements" in sections:
        sets = placement_sets(DATA_DIR, args.placements, args.placement_frames)
        placements = {
            "seed": PLACEMENT_SEED,
            "frames": args.placement_frames,
            "mountings": mounting_rows(sets),
            "table": placements_table(args.model_dir, sets, PRECISIONS, INFERENCE_PRECISION),
        }
        _print(
            f"LPE on {len(sets)} placements from the depot envelope ({args.model_dir.name})",
            placements_markdown(placements["table"], placements["mountings"]),
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    measured = {"accuracy": accuracy, "speed": speed, "placements": placements}
    RESULTS.write_text(
        json.dumps(
            strict_json({k: v for k, v in measured.items() if v is not None}), indent=2, allow_nan=False
        )
    )
    console.print(f"results: {RESULTS}")
    if args.update_card:
        record = args.model_dir / "training.json"  # written by training.lpe.train
        training = json.loads(record.read_text()) if record.exists() else None
        write_model_card(args.model_dir, accuracy, training, speed, placements)


if __name__ == "__main__":
    main()
