"""Data flows benchmark: `python -m bench.flows` prints two tables and writes bench/results/flows.json.

1. A dev model in shadow costs the prod flow nothing it needs: prod (INT8) frames/s running flat out
   on a node's batches, alone and with an FP32 shadow (one thread) offered every batch.
2. Two flows side by side: prod (INT8) and dev (FP32) estimate the same simulated stretch of bay 1
   (the scenario's first shunt and the minutes around it), each compared with the simulator's ground
   truth and with each other, as `/api/flows/compare` does.
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import prerequisites
from bench.report import NotMeasured, Row, report
from cloud.compare import Comparison, Seen, TrackView, View, view_of
from cloud.fse import FacilityStateEstimator, Observation, SeenExtent
from depotwatch.demo import first_move_s
from edge.aggregate import Sampled
from edge.lpe.model_files import model_path
from edge.lpe.openvino_lpe import OpenVinoLpe
from edge.observability import EdgeMetrics
from edge.shadow import ShadowRunner
from shared.layout import Facility, load_facility
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World

LAYOUT = Path("examples/facility.yaml")
MODEL = Path("ir_models/lpe/1.0.0")
RESULTS = Path("bench/results/flows.json")
NODE = "edge-bay1"
# What a node of 8 cameras sampled at 2 frames/s asks of its LPE.
NODE_NEED_FPS = 16.0
EPOCH = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def shadow_cost(facility: Facility, seconds: float) -> dict[str, float]:
    """Prod flat out and paced at a node's need, each alone and with an FP32 shadow offered every batch."""
    cameras = facility.cameras_of_node(NODE)
    world = World(facility, Scenario())
    batch = [
        Sampled(cid, _frame(facility, world, cid, 36000.0), datetime.now(UTC)) for cid in sorted(cameras)
    ]
    prod = OpenVinoLpe(MODEL, cameras, precision="int8", batch=len(batch))
    period = len(batch) / NODE_NEED_FPS

    def run(shadow: ShadowRunner | None, paced: bool) -> tuple[float, list[float]]:
        frames, latencies, started = 0, [], time.perf_counter()
        while (now := time.perf_counter()) - started < seconds:
            prod.estimate([(s.camera_id, s.frame) for s in batch])
            latencies.append(time.perf_counter() - now)
            frames += len(batch)
            if shadow is not None:
                shadow.offer(batch)
            if paced:
                time.sleep(max(started + frames / NODE_NEED_FPS - time.perf_counter(), 0.0))
        return frames / (time.perf_counter() - started), latencies

    figures: dict[str, float] = {}
    for label, with_shadow in (("alone", False), ("with_shadow", True)):
        metrics = EdgeMetrics()
        dev = OpenVinoLpe(MODEL, cameras, precision="fp32", batch=len(batch), threads=1)
        shadow = ShadowRunner("dev", dev, lambda _s, _e: None, metrics) if with_shadow else None
        if shadow is not None:
            shadow.start()
        try:
            flat_fps, _ = run(shadow, paced=False)
            paced_fps, latencies = run(shadow, paced=True)
        finally:
            if shadow is not None:
                shadow.stop()
        figures[f"prod_flat_out_fps_{label}"] = round(flat_fps, 1)
        figures[f"prod_paced_fps_{label}"] = round(paced_fps, 2)
        figures[f"prod_paced_batch_p95_ms_{label}"] = round(1000 * float(np.percentile(latencies, 95)), 2)
        if shadow is not None:
            sample = metrics.registry.get_sample_value
            inferred = sample("depotwatch_edge_shadow_frames_inferred_total", {"flow": "dev"}) or 0.0
            skipped = sample("depotwatch_edge_shadow_frames_skipped_total", {"flow": "dev"}) or 0.0
            # NaN when the shadow was offered nothing: reported as not measured, not as 0 % skipped.
            offered = inferred + skipped
            figures["shadow_skipped_share"] = round(skipped / offered, 3) if offered else float("nan")
    figures["batch_period_ms"] = round(1000 * period, 1)
    return figures


def side_by_side(facility: Facility, before_s: float, after_s: float, step_s: float) -> dict[str, Any]:
    """Comparison summaries of truth, prod (INT8) and dev (FP32), pairwise, on bay 1 from `before_s` before
    the first shunt on T1 to `after_s` after it, one frame per camera every `step_s` simulated seconds."""
    scenario = Scenario()
    world = World(facility, scenario)
    move = first_move_s(facility, scenario, {"T1"}, step_s=1.0) or 0.0
    cameras = sorted(facility.cameras_of_node(NODE))
    models = {
        "prod": OpenVinoLpe(MODEL, facility.cameras, precision="int8", batch=len(cameras)),
        "dev": OpenVinoLpe(MODEL, facility.cameras, precision="fp32", batch=len(cameras)),
    }
    estimators = {flow: FacilityStateEstimator(facility) for flow in models}
    pairs = {("truth", "prod"): Comparison(), ("truth", "dev"): Comparison(), ("prod", "dev"): Comparison()}
    t = move - before_s
    while t <= move + after_s:
        at = EPOCH + timedelta(seconds=t)
        frames = [(cid, _frame(facility, world, cid, t)) for cid in cameras]
        for flow, model in models.items():
            for (cid, _), extents in zip(frames, model.estimate(frames), strict=True):
                seen = tuple(
                    SeenExtent(e.start_m, e.end_m, e.start_beyond_view, e.end_beyond_view, e.confidence)
                    for e in extents
                )
                estimators[flow].observe(Observation(cid, at, seen))
            estimators[flow].update(at)
        views: dict[str, View] = {flow: view_of(fse.state()) for flow, fse in estimators.items()}
        views["truth"] = _truth(facility, world, t)
        for (a, b), comparison in pairs.items():
            comparison.add(facility, views[a], views[b])
        t += step_s
    return {f"{a}_vs_{b}": comparison.summary() for (a, b), comparison in pairs.items()}


def _frame(facility: Facility, world: World, camera_id: str, t: float) -> np.ndarray:  # type: ignore[type-arg]
    frame = SimCamera(facility, world, SimUrl(camera_id=camera_id, realtime=False)).frame_at(t)
    assert frame.image is not None
    return frame.image


def _truth(facility: Facility, world: World, t: float) -> View:
    view: View = {}
    for track_id, track in facility.tracks.items():
        locos = tuple(
            Seen(
                state.loco.plate, max(state.start_m, 0.0), min(state.end_m, track.length_m), state.loco.plate
            )
            for state in world.locos_at(t, track_id)
        )
        view[track_id] = TrackView(locos)
    return view


def _pair(figures: dict[str, float], key: str, fmt: str) -> str:
    return f"{fmt.format(figures[key + '_alone'])} / {fmt.format(figures[key + '_with_shadow'])}"


def main() -> None:
    """Run the shadow cost and side-by-side measurements, print the two tables and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Per throughput run.")
    parser.add_argument("--before", type=float, default=60.0, help="Simulated seconds before the shunt.")
    parser.add_argument("--after", type=float, default=120.0, help="Simulated seconds after it starts.")
    parser.add_argument("--step", type=float, default=1.0, help="Simulated seconds between frames.")
    args = parser.parse_args()
    prerequisites.require(
        "bench.flows",
        [
            prerequisites.ir_model(
                model_path(MODEL, precision), "run from the repository root, where ir_models/ holds it"
            )
            for precision in ("int8", "fp32")
        ],
    )
    facility = load_facility(LAYOUT)
    cost = shadow_cost(facility, args.seconds)
    flows = side_by_side(facility, args.before, args.after, args.step)
    need = f"≥ {NODE_NEED_FPS:.0f}"
    rows: list[Row] = [
        (
            "prod frames/s flat out: alone / FP32 shadow beside",
            _pair(cost, "prod_flat_out_fps", "{:.0f}"),
            need,
        ),
        ("prod frames/s at a node's need: alone / shadow", _pair(cost, "prod_paced_fps", "{:.1f}"), need),
        (
            "prod batch latency p95 ms at that pace: alone / shadow",
            _pair(cost, "prod_paced_batch_p95_ms", "{:.1f}"),
            f"< {cost['batch_period_ms']:.0f} (batch period)",
        ),
        (
            "shadow frames skipped (flat out and paced)",
            NotMeasured("the shadow was offered no frame")
            if math.isnan(cost["shadow_skipped_share"])
            else f"{100 * cost['shadow_skipped_share']:.0f} %",
            "",
        ),
    ]
    for pair, s in flows.items():
        rows += [
            (f"{pair}: occupancy agreement", f"{s['occupancy_agreement']}", ""),
            (f"{pair}: end error median / p95 m", f"{s['end_error_median_m']} / {s['end_error_p95_m']}", ""),
            (
                f"{pair}: only a / only b / id switches",
                f"{s['only_a']} / {s['only_b']} / {s['id_switches']}",
                "",
            ),
        ]
    report("Data flows (this machine)", rows, RESULTS, {"shadow": cost, "flows": flows})


if __name__ == "__main__":
    main()
