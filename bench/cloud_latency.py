"""Latency from a detection published to the state visible through the API, under a depot's full load.

The whole cloud service runs (ingest, estimator loop, HTTP API on uvicorn, PostgreSQL) for a
generated depot of 50 bays × 4 cameras. A separate process plays the edge nodes: every camera
publishes at its rate, staggered, one locomotive in each bay's first view. Now and then it shifts one
locomotive by PROBE_SHIFT_M; the first message carrying the shift is stamped when published, and a
thread of the same process polls GET /api/state until the shift shows. The gap is one sample.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cloud.api.app import create_app
from cloud.api.server import make_server
from cloud.auth import Role, create_key
from cloud.config import ApiConfig, CloudConfig, IngestConfig
from cloud.service import CloudService
from depotwatch.embedded_broker import free_port
from examples.make_facility import build
from shared.codec import encode
from shared.layout import Facility, parse_facility
from shared.messages import CameraHealth, CameraState, Detection, LocoExtent, ModelRef, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind

BAYS = 50  # 4 cameras each
PROBE_SHIFT_M = 2.0
PROBE_GAP_S = 0.25  # between one probe seen and the next
POLL_S = 0.01
VISIBLE_TOLERANCE_M = 0.15
PROBE_TIMEOUT_S = 5.0


def big_facility(path: Path) -> Facility:
    """The generated depot, written where the service reads its layout."""
    document = build(BAYS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return parse_facility(document, str(path))


def _detection(facility: Facility, cid: str, seq: int, shift: float) -> Detection:
    cam = facility.cameras[cid]
    extents = []
    if cid.endswith("-C1"):
        extents.append(
            LocoExtent(
                start_m=round(cam.view.start_m + 2.0 + shift, 2),
                end_m=round(cam.view.start_m + 9.0 + shift, 2),
                start_beyond_view=False,
                end_beyond_view=False,
                confidence=0.9,
            )
        )
    return Detection(
        observation_id=uuid.uuid4(),
        node_id=cam.node,
        camera_id=cid,
        track_id=cam.track,
        model=ModelRef(name="lpe", version="1.0.0-int8"),
        captured_at=datetime.now(UTC),
        seq=seq,
        view=TrackSpan(start_m=cam.view.start_m, end_m=cam.view.end_m),
        extents=extents,
        camera=CameraHealth(state=CameraState.ONLINE, fps=25.0),
    )


def _edge_and_probe(
    layout: Path, broker: str, api: str, key: str, seconds: float, fps: float, out: Any
) -> None:
    """The edge nodes' traffic and the probing, in a process of their own."""
    facility = parse_facility(yaml.safe_load(layout.read_text()), str(layout))
    cameras = sorted(facility.cameras)
    probe_cameras = [c for c in cameras if c.endswith("-C1")]
    shift = dict.fromkeys(cameras, 0.0)
    seqs: dict[str, int] = {}
    pending: dict[str, Any] = {}
    lock = threading.Lock()
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        request = urllib.request.Request(f"{api}/api/state", headers={"X-API-Key": key})
        while not stop.is_set():
            with lock:
                probe = dict(pending)
            if not probe.get("published_at"):
                time.sleep(POLL_S)
                continue
            with urllib.request.urlopen(request, timeout=5) as response:
                state = json.loads(response.read())
            seen = time.perf_counter()
            [track] = [t for t in state["tracks"] if t["track_id"] == probe["track"]]
            if any(abs(loco["start_m"] - probe["start_m"]) <= VISIBLE_TOLERANCE_M for loco in track["locos"]):
                latencies.append(seen - probe["published_at"])
                with lock:
                    pending.clear()
                    pending["next_at"] = seen + PROBE_GAP_S
            elif seen - probe["published_at"] > PROBE_TIMEOUT_S:
                latencies.append(float("inf"))
                with lock:
                    pending.clear()
            time.sleep(POLL_S)

    link = MqttConnection(BrokerConfig(url=broker), f"bench-edges-{uuid.uuid4().hex[:6]}")
    link.start()
    link.wait_connected(5)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    rng = random.Random(7)
    period = 1.0 / (fps * len(cameras))
    start = time.perf_counter()
    sent = 0
    while time.perf_counter() - start < seconds:
        cid = cameras[sent % len(cameras)]
        with lock:
            if not pending.get("camera") and time.perf_counter() >= pending.get("next_at", 0.0):
                probe = rng.choice(probe_cameras)
                shift[probe] = PROBE_SHIFT_M - shift[probe]
                view = facility.cameras[probe].view
                pending.update(
                    camera=probe,
                    track=facility.cameras[probe].track,
                    start_m=round(view.start_m + 2.0 + shift[probe], 2),
                    published_at=None,
                )
            stamp = pending.get("camera") == cid and pending.get("published_at") is None
        node = facility.cameras[cid].node
        seqs[node] = seqs.get(node, 0) + 1
        topic = Topic(TopicKind.DETECTION, facility.site, node, flow="prod", camera=cid)
        payload = encode(_detection(facility, cid, seqs[node], shift[cid]))
        if stamp:
            with lock:
                pending["published_at"] = time.perf_counter()
        link.publish(str(topic), payload)
        sent += 1
        delay = start + sent * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    stop.set()
    poller.join(10)
    link.stop()
    out.put({"latencies": latencies, "sent": sent, "rate": sent / elapsed})


def latency(
    broker: str, database_url: str, layout: Path, seconds: float, fps: float = 2.0
) -> dict[str, float]:
    """Run the service against the generated depot and return latency percentiles (ms)."""
    facility = big_facility(layout)
    port = free_port()
    config = CloudConfig(
        layout=layout,
        database_url=database_url,
        broker=BrokerConfig(url=broker),
        ingest=IngestConfig(client_id=f"bench-cloud-{uuid.uuid4().hex[:6]}"),
        api=ApiConfig(port=port),
    )
    service = CloudService.open(config, facility)
    server = make_server(create_app(service), "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    service.link.wait_subscribed(10)
    key = create_key(service.engine, Role.VIEWER)
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[dict[str, Any]] = context.Queue()
    process = context.Process(
        target=_edge_and_probe,
        args=(layout, broker, f"http://127.0.0.1:{port}", key, seconds, fps, results),
    )
    process.start()
    try:
        outcome = results.get(timeout=seconds + 60)
    except queue.Empty as exc:
        raise RuntimeError("the edge/probe process gave no result") from exc
    finally:
        process.join(30)
        server.should_exit = True
        thread.join(30)
    samples = np.array(outcome["latencies"]) * 1000.0

    def percentile(q: float) -> float:  # NaN without a sample: the caller reports it as not measured
        return float(np.percentile(samples, q)) if len(samples) else float("nan")

    return {
        "cameras": len(facility.cameras),
        "rate": outcome["rate"],
        "samples": float(len(samples)),
        "lost_probes": float(np.isinf(samples).sum()),
        "p50_ms": percentile(50),
        "p95_ms": percentile(95),
        "p99_ms": percentile(99),
        "max_ms": percentile(100),
        "update_interval_s": config.update_interval_s,
        "stored": float(service.ingest.counts.stored),
        "dead_letters": float(service.ingest.counts.dead_letters),
    }
