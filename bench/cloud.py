"""Cloud benchmark: ingest + FSE + database throughput against a bare subscriber, and FSE accuracy.

    python -m bench.cloud [--messages 30000] [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

A separate process publishes detections to a Mosquitto of the benchmark's own (configured as we ship it:
no silent drop of queued QoS 1 messages) as fast as it can; first a bare
paho subscriber counts them, then the cloud's ingest (validation, idempotent batched writes, the live
state estimator) takes the same stream into a fresh PostgreSQL database. FSE accuracy is measured on a
simulated day of the example depot fed with ground-truth detections, noise and camera dropouts.
Prints a table and writes bench/results/cloud.json. Needs Mosquitto and PostgreSQL (checked first:
exit status 2 with the install command when missing); a stream that did not arrive is reported as not
measured, with exit status 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import prerequisites
from bench.cloud_latency import latency
from bench.prerequisites import APT, Requirement
from bench.report import NotMeasured, Row, rate, report
from cloud.db.engine import open_database
from cloud.flows import one_estimator
from cloud.fse import FacilityStateEstimator
from cloud.ingest import Ingest
from shared.codec import encode
from shared.layout import load_facility
from shared.messages import CameraHealth, CameraState, Detection, LocoExtent, ModelRef, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind, subscription
from sim.scenario import Scenario
from sim.world import World

REPO = Path(__file__).resolve().parents[1]
LAYOUT = REPO / "examples" / "facility.yaml"
RESULTS = REPO / "bench" / "results" / "cloud.json"
BROKER_PORT = 18830
BROKER = f"mqtt://127.0.0.1:{BROKER_PORT}"
MOSQUITTO_CONF = (
    f"listener {BROKER_PORT} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
)
WAIT_S = 120


def _messages(count: int) -> list[tuple[str, bytes]]:
    """Detections of every camera of the layout in turn, each under its own node."""
    facility = load_facility(LAYOUT)
    cameras = sorted(facility.cameras)
    start = datetime.now(UTC)
    first_seq = int(start.timestamp() * 1000) * 1000  # fresh numbers however often the bench runs
    out = []
    for k in range(count):
        cid = cameras[k % len(cameras)]
        cam = facility.cameras[cid]
        extent = LocoExtent(
            start_m=cam.view.start_m + 2,
            end_m=cam.view.end_m,
            start_beyond_view=False,
            end_beyond_view=True,
            confidence=0.9,
        )
        detection = Detection(
            observation_id=uuid.uuid4(),
            node_id=cam.node,
            camera_id=cid,
            track_id=cam.track,
            model=ModelRef(name="lpe", version="1.0.0-int8"),
            captured_at=start + timedelta(milliseconds=k),
            seq=first_seq + k,
            view=TrackSpan(start_m=cam.view.start_m, end_m=cam.view.end_m),
            extents=[extent],
            camera=CameraHealth(state=CameraState.ONLINE, fps=25.0),
        )
        topic = Topic(TopicKind.DETECTION, facility.site, cam.node, flow="prod", camera=cid)
        out.append((str(topic), encode(detection)))
    return out


def _publish(count: int, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    messages = _messages(count)
    link = MqttConnection(BrokerConfig(url=BROKER), f"bench-pub-{uuid.uuid4().hex[:6]}")
    link.start()
    link.wait_connected(5)
    ready.wait(30)
    for topic, payload in messages:
        while link.publish(topic, payload) is None:
            time.sleep(0.001)
    link.stop(timeout=120)


def _run_publisher(
    count: int,
) -> tuple[multiprocessing.Process, multiprocessing.synchronize.Event]:  # type: ignore[name-defined]
    ready = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(target=_publish, args=(count, ready))
    process.start()
    return process, ready


def _connected(link: MqttConnection, what: str) -> None:
    if not (link.wait_connected(10) and link.wait_subscribed(10)):
        raise RuntimeError(f"{what} could not subscribe at {BROKER}: {link.state().last_error}")


def bare_rate(count: int) -> dict[str, float]:
    """Messages per second the bare broker carries to a plain subscriber, of `count` QoS 1 detections."""
    received = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_topic: str, _payload: bytes) -> None:
        nonlocal received, first, last
        received += 1
        last = time.perf_counter()
        first = first or last
        if received >= count:
            done.set()

    facility = load_facility(LAYOUT)
    sub = MqttConnection(BrokerConfig(url=BROKER), f"bench-bare-{uuid.uuid4().hex[:6]}")
    sub.subscribe(subscription(TopicKind.DETECTION, facility.site, flow="prod"), on_message)
    sub.start()
    _connected(sub, "the bare subscriber")
    process, ready = _run_publisher(count)
    ready.set()
    done.wait(WAIT_S)
    process.join(120)
    sub.stop()
    return {"rate": received / (last - first) if received > 1 else 0.0, "received": received}


def ingest_rate(count: int, database_url: str) -> dict[str, float]:
    """Detections per second the ingest stores in `database_url`, with its stored, duplicate and dead-letter
    counts."""
    facility = load_facility(LAYOUT)
    engine = open_database(database_url, setting="--database-url")
    fse = FacilityStateEstimator(facility)
    ingest = Ingest(engine, facility, one_estimator(fse))
    link = MqttConnection(BrokerConfig(url=BROKER), f"bench-ingest-{uuid.uuid4().hex[:6]}")
    link.subscribe_acking(subscription(TopicKind.DETECTION, facility.site, flow="prod"), ingest.handle)
    ingest.start()
    link.start()
    _connected(link, "the ingest")
    process, ready = _run_publisher(count)
    started = time.perf_counter()
    ready.set()
    while ingest.counts.stored + ingest.counts.duplicates < count and time.perf_counter() - started < WAIT_S:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    process.join(120)
    link.stop(drain=lambda: ingest.flush(5))
    ingest.stop()
    engine.dispose()
    return {
        "rate": ingest.counts.stored / elapsed,
        "stored": ingest.counts.stored,
        "duplicates": ingest.counts.duplicates,
        "dead_letters": ingest.counts.dead_letters,
    }


def fse_accuracy() -> dict[str, float]:
    """FSE accuracy on a simulated day of the example depot, with noise and camera dropouts."""
    from tests.cloud.test_fse import run

    facility = load_facility(LAYOUT)
    return run(facility, World(facility, Scenario(seed=12, horizon_h=24)), hours=24, dropouts=True)


def fresh_postgres(url: str) -> tuple[str, str]:
    """Create an empty database on the server of `url`; returns its URL and its name."""
    name = f"depotwatch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def _on_fresh_postgres(server_url: str, run: Callable[[str], dict[str, float]]) -> dict[str, float]:
    url, name = fresh_postgres(server_url)
    try:
        return run(url)
    finally:
        admin = create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def requirements(database_url: str) -> list[Requirement]:
    """What this benchmark needs from the machine."""
    return [
        prerequisites.executable("mosquitto", f"{APT} mosquitto"),
        prerequisites.postgres(database_url),
        prerequisites.free_port(
            BROKER_PORT, "stop what listens there: the benchmark starts a Mosquitto of its own on it"
        ),
    ]


def _start_broker() -> subprocess.Popen[bytes]:
    conf = REPO / "data" / "bench" / "mosquitto.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(MOSQUITTO_CONF)
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and broker.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", BROKER_PORT)) == 0:
                return broker
        time.sleep(0.1)
    broker.kill()
    _, errors = broker.communicate()
    raise RuntimeError(f"mosquitto did not start on port {BROKER_PORT}: {errors.decode().strip()}")


def rows(count: int, bare: dict[str, float], ingest: dict[str, float], delay: dict[str, float]) -> list[Row]:
    """The cloud half of the table; a stream that did not arrive is `NotMeasured`, never 0."""

    def complete(received: float, what: str) -> str | None:
        return None if received >= count else f"{what}: {received:.0f} of {count} in {WAIT_S} s"

    bare_short = complete(bare["received"], "arrived")
    ingest_short = complete(ingest["stored"] + ingest.get("duplicates", 0), "stored")
    bare_value = NotMeasured(bare_short) if bare_short else rate(bare["rate"], "{:.0f}", "nothing arrived")
    ingest_value = (
        NotMeasured(ingest_short) if ingest_short else rate(ingest["rate"], "{:.0f}", "nothing stored")
    )
    ratio = (
        f"{ingest['rate'] / bare['rate']:.2f}"
        if isinstance(bare_value, str) and isinstance(ingest_value, str)
        else NotMeasured("needs both figures above")
    )
    seen = delay["samples"] - delay["lost_probes"]
    probes = NotMeasured("no probe was seen in GET /api/state") if seen <= 0 else None
    return [
        ("bare subscriber, detections/s", bare_value, ""),
        ("ingest + FSE + PostgreSQL, detections/s", ingest_value, "≥ 5000"),
        ("ingest / bare", ratio, "≥ 0.50"),
        (
            "stored / dead letters",
            f"{ingest['stored']:.0f} / {ingest['dead_letters']:.0f}",
            f"{count} / 0",
        ),
        (
            f"published → visible in GET /api/state, p99 ms ({delay['cameras']:.0f} cameras × 2 fps)",
            probes or f"{delay['p99_ms']:.0f}",
            "≤ 250",
        ),
        (
            "  p50 / p95 / max ms",
            probes or f"{delay['p50_ms']:.0f} / {delay['p95_ms']:.0f} / {delay['max_ms']:.0f}",
            "",
        ),
        (
            "  probes seen / lost; messages/s sent",
            f"{seen:.0f} / {delay['lost_probes']:.0f}; {delay['rate']:.0f}",
            "lost 0",
        ),
    ]


def main() -> None:
    """Run the three measurements against a Mosquitto of its own, print the table and write the results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="Duration of the latency run (200 cameras)."
    )
    args = parser.parse_args()
    prerequisites.require("bench.cloud", requirements(args.database_url))
    broker = _start_broker()
    try:
        bare = bare_rate(args.messages)
        ingest = _on_fresh_postgres(args.database_url, lambda url: ingest_rate(args.messages, url))
        delay = _on_fresh_postgres(
            args.database_url,
            lambda url: latency(
                BROKER, url, REPO / "data" / "bench" / "facility-200.yaml", args.latency_seconds
            ),
        )
    finally:
        broker.terminate()
        broker.wait(10)
    accuracy = fse_accuracy()
    table = [
        *rows(args.messages, bare, ingest, delay),
        ("FSE: locomotive count exact, share of time", f"{accuracy['count_exact']:.4f}", "≥ 0.99"),
        ("FSE: identity switches per 100 moves", f"{accuracy['switches_per_100_moves']:.2f}", "≤ 1"),
        ("FSE: moves in the simulated day", f"{accuracy['moves']:.0f}", ""),
        ("FSE: seen end error p95, m", f"{accuracy['end_error_p95']:.2f}", ""),
    ]
    report(
        "Cloud service on this machine (2 cores), Mosquitto + PostgreSQL",
        table,
        RESULTS,
        {
            "bare_rate": bare["rate"],
            "bare_received": bare["received"],
            "ingest": ingest,
            "latency": delay,
            "fse": accuracy,
        },
    )


if __name__ == "__main__":
    main()
