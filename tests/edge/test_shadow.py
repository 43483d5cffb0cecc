"""A flow run in shadow at the edge: the same frames as the node's own flow, another model, its own
topics; it skips frames rather than hold the main flow up, and a broken shadow model takes nothing down."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.aggregate import Sampled
from edge.config import EdgeConfig, LpeConfig, ShadowFlowConfig
from edge.lpe.openvino_lpe import OpenVinoLpe
from edge.node import EdgeNode
from edge.observability import EdgeMetrics
from edge.shadow import ShadowRunner
from shared.layout import Camera, Facility, parse_facility
from shared.messages import Detection, LocoExtent, Thumbnail
from sim.edge_source import with_sim
from tests.collector import Collector
from tests.edge.nodes import facility_data, node_config
from tests.edge.test_lpe import MODEL_DIR, PREVIOUS_DIR
from tests.waiting import wait_until


@pytest.fixture
def depot() -> Facility:
    """The example depot under a site id of its own."""
    return parse_facility(facility_data(f"test-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def collector(mqtt_url: str, depot: Facility) -> Iterator[Collector]:
    c = Collector(mqtt_url, depot.site)
    yield c
    c.stop()


# The previous version in shadow of the shipped one, as before a rollback.
DEV = ShadowFlowConfig(lpe=LpeConfig(model_dir=PREVIOUS_DIR, precision="fp32"), threads=1)


def _shadow_config(tmp_path: Path, url: str, shadow: ShadowFlowConfig = DEV) -> EdgeConfig:
    return node_config(tmp_path, url, shadow={"dev": shadow})


def test_a_shadow_flow_publishes_its_own_model_on_the_same_frames(
    tmp_path: Path,
    mqtt_url: str,
    depot: Facility,
    collector: Collector,
) -> None:
    node = EdgeNode.open(_shadow_config(tmp_path, mqtt_url), depot, with_sim())
    node.start()
    try:
        wait_until(lambda: len(_dev(collector)) >= 24, 30, "24 dev detections")
        dev_so_far = _dev(collector)
        # Every shadow detection is of a frame the main flow estimated too: while the node still runs,
        # the main detection of each one received so far must arrive.
        wait_until(
            lambda: len(_paired(collector, dev_so_far)[0]) == len(dev_so_far),
            10,
            "the main-flow detection of every frame the shadow flow estimated",
        )
        health = node.health()
        dropped = sum(w.frames_dropped_total for w in node.workers.values())
    finally:
        node.stop()
    assert health["healthy"] and health["shadow"] == {"dev": "running"}
    pairs, unpaired = _paired(collector, dev_so_far)
    assert not unpaired, f"{len(unpaired)} shadow detections of frames the main flow did not estimate"
    assert len(pairs) >= 24
    detections = collector.of(Detection)
    assert {d.model.version for d in detections if d.flow == "prod"} == {"2.0.0-int8"}
    assert {d.model.version for d in detections if d.flow == "dev"} == {"1.0.0-fp32"}
    assert dropped == 0  # the main flow kept up with every sampled frame
    # The two models agree on every frame both estimated.
    for shadow, main in pairs:
        assert len(shadow.extents) == len(main.extents), (shadow.camera_id, shadow.captured_at)
        for a, b in zip(shadow.extents, main.extents, strict=True):
            assert abs(a.start_m - b.start_m) < 1.0 and abs(a.end_m - b.end_m) < 1.0
    assert all(t.meta.flow == "prod" for t in collector.of(Thumbnail))  # thumbnails come from the main flow


def test_a_broken_shadow_model_leaves_the_main_flow_running(
    tmp_path: Path,
    mqtt_url: str,
    depot: Facility,
    collector: Collector,
) -> None:
    broken = tmp_path / "lpe" / "9.9.9"
    broken.mkdir(parents=True)
    (broken / "lpe_int8.xml").write_text("<net>not a model</net>")
    (broken / "lpe_int8.bin").write_bytes(b"\0" * 16)
    config = _shadow_config(tmp_path, mqtt_url, ShadowFlowConfig(lpe=LpeConfig(model_dir=broken)))
    node = EdgeNode.open(config, depot, with_sim())
    node.start()
    try:
        wait_until(lambda: len(collector.of(Detection)) >= 8, 20, "main-flow detections")
        health = node.health()
    finally:
        node.stop()
    assert health["healthy"]
    assert str(health["shadow"]["dev"]).startswith("failed: ")  # type: ignore[index]
    assert all(d.flow == "prod" for d in collector.of(Detection))


def _dev(collector: Collector) -> list[Detection]:
    return [d for d in collector.of(Detection) if d.flow == "dev"]


def _paired(
    collector: Collector, dev: list[Detection]
) -> tuple[list[tuple[Detection, Detection]], list[Detection]]:
    """The shadow detections given, each with the main flow's of the same frame, and those whose main
    detection has not been received."""
    prod = {(d.camera_id, d.captured_at): d for d in collector.of(Detection) if d.flow == "prod"}
    pairs: list[tuple[Detection, Detection]] = []
    unpaired: list[Detection] = []
    for shadow in dev:
        main = prod.get((shadow.camera_id, shadow.captured_at))
        if main is None:
            unpaired.append(shadow)
        else:
            pairs.append((shadow, main))
    return pairs, unpaired


class _Held:
    """The real shipped model, held at a gate: a shadow flow too slow to keep up."""

    def __init__(self, lpe: OpenVinoLpe) -> None:
        self.lpe, self.gate, self.calls = lpe, threading.Event(), 0

    @property
    def model(self) -> object:
        return self.lpe.model

    def estimate(self, frames: list[tuple[str, np.ndarray]]) -> list[list[LocoExtent]]:  # type: ignore[type-arg]
        self.calls += 1
        self.gate.wait(10)
        return self.lpe.estimate(frames)

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        self.lpe.recalibrate(camera_id, camera)


def test_a_slow_shadow_skips_batches_and_never_blocks_the_main_flow(depot: Facility) -> None:
    cameras = depot.cameras_of_node("edge-bay1")
    held = _Held(OpenVinoLpe(MODEL_DIR, cameras, precision="fp32", batch=4, threads=1))
    emitted: list[Sampled] = []
    metrics = EdgeMetrics()
    runner = ShadowRunner("dev", held, lambda s, _extents: emitted.append(s), metrics)  # type: ignore[arg-type]
    grey = np.full((720, 1280, 3), 90, np.uint8)
    runner.start()
    try:
        batches = [[Sampled(cid, grey, datetime.now(UTC)) for cid in sorted(cameras)] for _ in range(10)]
        runner.offer(batches[0])
        wait_until(lambda: held.calls == 1, 5, "the shadow to take the first batch")

        # The shadow is stuck on batch 0 (for up to 10 s): the other offers must return meanwhile.
        def offer_the_rest() -> None:
            for batch in batches[1:]:
                runner.offer(batch)

        offering = threading.Thread(target=offer_the_rest, daemon=True)
        offering.start()
        wait_until(lambda: not offering.is_alive(), 5, "nine offers while the shadow is stuck")
        assert held.calls == 1 and not held.gate.is_set()
        held.gate.set()
        wait_until(lambda: len(emitted) == 8, 10, "the first and the newest batch")
    finally:
        runner.stop()
    assert emitted[:4] == batches[0] and emitted[4:] == batches[-1]
    skipped = metrics.registry.get_sample_value(
        "depotwatch_edge_shadow_frames_skipped_total", {"flow": "dev"}
    )
    assert skipped == 8 * 4  # batches 1-8 were replaced before the shadow could start them
