"""The edge node against a real broker: what it publishes, outages, commands, its Last Will."""

from __future__ import annotations

import json
import logging
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from depotwatch.embedded_broker import free_port
from edge.config import MetricsConfig
from edge.node import EdgeNode
from shared.codec import encode
from shared.layout import Facility, parse_facility
from shared.messages import (
    CameraState,
    CameraStatus,
    CommandAck,
    CommandRequest,
    Detection,
    LocoExtent,
    NodeLifecycle,
    NodeState,
    SetCameraEnabled,
    SetSampleRate,
    Thumbnail,
)
from sim.edge_source import with_sim
from tests.brokers import RestartableBroker
from tests.collector import Collector
from tests.edge.nodes import NODE, edge_process, facility_data, node_config, send_command
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until


@pytest.fixture
def facility(site: str) -> Facility:
    return parse_facility(facility_data(site))


def test_detections_thumbnails_and_birth_arrive_and_decode(
    tmp_path: Path, mqtt_url: str, facility: Facility, collector: Collector
) -> None:
    port = free_port()
    node = EdgeNode.open(
        node_config(tmp_path, mqtt_url, metrics=MetricsConfig(port=port)), facility, with_sim()
    )
    node.start()
    try:
        wait_until(lambda: len(collector.of(Detection)) >= 24, 20, "24 detections")
        wait_until(lambda: collector.of(CameraStatus), 5, "camera status")
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        node.stop()
    assert health["healthy"] and health["mqtt_connected"]
    assert set(health["cameras"]) == {"T1-C1", "T1-C2", "T1-C3", "T1-C4"}
    assert 'depotwatch_edge_frames_inferred_total{camera="T1-C1"}' in metrics
    assert "depotwatch_edge_spool_depth" in metrics
    assert not collector.malformed
    births = [m for m in collector.of(NodeLifecycle) if m.state is NodeState.ONLINE]
    assert births and births[0].cameras == ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]
    deaths = [m for m in collector.of(NodeLifecycle) if m.state is NodeState.OFFLINE]
    assert deaths and deaths[-1].bd_seq == births[-1].bd_seq and deaths[-1].reason == "clean shutdown"
    detections = collector.of(Detection)
    seqs = [d.seq for d in detections]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {d.camera_id for d in detections} == {"T1-C1", "T1-C2", "T1-C3", "T1-C4"}
    assert all(d.model.name == "lpe" and d.camera.state is CameraState.ONLINE for d in detections)
    observations = {d.observation_id: d for d in detections}
    thumbs = collector.of(Thumbnail)
    if any(d.extents for d in detections):
        assert thumbs, "locomotives in view but no thumbnail"
    for thumb in thumbs:
        origin = observations[thumb.meta.observation_id]
        assert thumb.meta.extent_index < len(origin.extents)
        assert 5_000 <= len(thumb.jpeg) <= 120_000


def test_a_broker_restart_loses_no_detection_and_marks_the_backlog(tmp_path: Path, site: str) -> None:
    broker = RestartableBroker(tmp_path)
    broker.start()
    # The node reaches the broker through a proxy, so that after the restart it can connect only
    # once the second collector has subscribed: what it sends then is received.
    proxy = TcpProxy(("127.0.0.1", broker.port)).start()
    facility = parse_facility(facility_data(site))
    first = Collector(broker.url, site)
    node = EdgeNode.open(node_config(tmp_path, f"mqtt://127.0.0.1:{proxy.port}"), facility, with_sim())
    node.start()
    second = None

    def received() -> list[Detection]:
        return first.of(Detection) + (second.of(Detection) if second else [])

    try:
        # Between two bursts of the node's detections: a message the broker acknowledged to the node
        # and had not yet forwarded when it stopped would be the broker's loss, not the node's.
        wait_until(lambda: _quiet(first, at_least=10), 20, "detections before the outage")
        proxy.set_mode("reset")
        broker.stop()
        wait_until(lambda: node.spool.depth() >= 12, 10, "detections piling up in the spool")
        broker.start()
        second = Collector(broker.url, site)
        proxy.set_mode("forward")
        wait_until(
            lambda: node.spool.depth() == 0 and node.link.connected.is_set(), 20, "the backlog to drain"
        )
        # Everything numbered so far has been acknowledged by the broker: it reaches the collectors.
        wait_until(lambda: _gapless({d.seq for d in received()}), 10, "every detection up to the newest")
    finally:
        node.stop()
        first.stop()
        if second is not None:
            second.stop()
        proxy.stop()
        broker.stop()
    seqs = sorted({d.seq for d in received()})
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), "a sequence number is missing"
    assert seqs[0] == 0
    assert any(d.historical for d in received()), "the backlog was not marked historical"
    births = [m for m in first.of(NodeLifecycle) + second.of(NodeLifecycle) if m.state is NodeState.ONLINE]  # type: ignore[union-attr]
    assert len({b.bd_seq for b in births}) >= 2, "a reconnect must bring a new birth sequence"


def _get(url: str) -> tuple[int, str]:
    """Status and body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _metric(metrics: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics, re.MULTILINE)
    assert found, f"{name} not in the metrics"
    return float(found[1])


def test_a_node_that_cannot_reach_its_broker_logs_it_fails_healthz_and_counts_until_it_connects(
    tmp_path: Path, site: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.mqtt")
    broker = RestartableBroker(tmp_path)  # its port is chosen, nothing listens there yet
    port = free_port()
    node = EdgeNode.open(
        node_config(tmp_path, broker.url, metrics=MetricsConfig(port=port)),
        parse_facility(facility_data(site)),
        with_sim(),
    )
    http = f"http://127.0.0.1:{port}"

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "shared.mqtt" and text in r.getMessage()]

    node.start()
    try:
        wait_until(lambda: node.link.state().failed_attempts >= 2, 15, "two failed attempts")
        status, body = _get(f"{http}/healthz")
        down = json.loads(body)
        down_metrics = _get(f"{http}/metrics")[1]
        failed_lines = lines("cannot connect to broker")
        broker.start()
        wait_until(lambda: node.link.connected.is_set(), 15, "the node to connect")
        up_status, up_body = wait_until(
            lambda: got if (got := _get(f"{http}/healthz"))[0] == 200 else None, 5, "healthz 200"
        )
        up_metrics = _get(f"{http}/metrics")[1]
        failures = node.link.state().failures_total
        connected_lines = wait_until(lambda: lines("connected to"), 5, "the connect line")
    finally:
        node.stop()
        broker.stop()
    assert status == 503 and not down["healthy"] and not down["mqtt_connected"]
    [problem] = down["problems"]
    assert re.fullmatch(
        rf"MQTT: never connected to broker {re.escape(broker.url)} in \d+ s: connection refused "
        r"\(\d+ failed attempts; see broker.url\)",
        problem,
    ), problem
    assert down["broker"]["last_error"] == "connection refused" and down["broker"]["failed_attempts"] >= 2
    assert _metric(down_metrics, "depotwatch_edge_mqtt_connect_failures_total") >= 2
    assert _metric(down_metrics, "depotwatch_edge_mqtt_connected") == 0
    # Two attempts or more, one line: the rest wait for the window (a minute) to pass.
    assert failed_lines == [
        f"MQTT depotwatch-edge-{NODE}: cannot connect to broker {broker.url}: connection refused "
        "(attempt 1, retrying with backoff up to 30 s)"
    ]
    up = json.loads(up_body)
    assert up_status == 200 and up["healthy"] and up["problems"] == [] and up["broker"]["connected"]
    assert _metric(up_metrics, "depotwatch_edge_mqtt_connected") == 1
    assert _metric(up_metrics, "depotwatch_edge_mqtt_connect_failures_total") == failures
    assert re.fullmatch(
        rf"MQTT depotwatch-edge-{NODE}: connected to {re.escape(broker.url)} after {failures} failed "
        r"attempts over \d+ s",
        connected_lines[0],
    ), connected_lines


def _gapless(seqs: set[int]) -> bool:
    """Sequence numbers from 0 to the newest, none missing."""
    return bool(seqs) and min(seqs) == 0 and len(seqs) == max(seqs) + 1


def _quiet(collector: Collector, at_least: int) -> bool:
    """At least `at_least` detections received, and none more for a moment."""
    count = len(collector.of(Detection))
    time.sleep(0.15)
    return count >= at_least and len(collector.of(Detection)) == count


def test_commands_are_validated_acknowledged_and_applied(
    tmp_path: Path, mqtt_url: str, site: str, facility: Facility, collector: Collector
) -> None:
    node = EdgeNode.open(node_config(tmp_path, mqtt_url), facility, with_sim())
    node.start()
    try:
        wait_until(lambda: node.link.connected.is_set(), 5, "the node to connect")
        assert node.link.wait_subscribed(5)
        send_command(site, b"{not json", mqtt_url)
        bad_camera = CommandRequest(
            command_id=uuid.uuid4(),
            issued_at=datetime.now(UTC),
            command=SetSampleRate(camera_id="T3-C1", fps=1),
        )
        send_command(site, encode(bad_camera), mqtt_url)
        disable = CommandRequest(
            command_id=uuid.uuid4(),
            issued_at=datetime.now(UTC),
            command=SetCameraEnabled(camera_id="T1-C2", enabled=False),
        )
        send_command(site, encode(disable), mqtt_url)
        acks = wait_until(lambda: len(a := collector.of(CommandAck)) >= 3 and a, 10, "three acks")
        wait_until(
            lambda: any(
                s.camera_id == "T1-C2" and s.state is CameraState.DISABLED for s in collector.of(CameraStatus)
            ),
            5,
            "T1-C2 to report disabled",
        )
        sample_rates = {cid: w.settings.sample_fps for cid, w in node.workers.items()}
    finally:
        node.stop()
    by_id = {a.command_id: a for a in acks}
    assert any(a.command_id is None and not a.accepted and "invalid CommandRequest" in a.reason for a in acks)
    assert not by_id[bad_camera.command_id].accepted
    assert "not served by node edge-bay1" in by_id[bad_camera.command_id].reason
    assert by_id[disable.command_id].accepted
    assert sample_rates == {"T1-C1": 4, "T1-C2": 4, "T1-C3": 4, "T1-C4": 4}, (
        "a rejected command changed something"
    )


def test_sigkill_fires_the_last_will_with_the_birth_sequence(
    tmp_path: Path, mqtt_url: str, site: str, collector: Collector
) -> None:
    started = datetime.now(UTC)
    process = edge_process(tmp_path, site, mqtt_url)
    try:
        birth = wait_until(
            lambda: next(
                (m for m in collector.of(NodeLifecycle) if m.state is NodeState.ONLINE and m.at > started),
                None,
            ),
            60,
            "the node's birth",
        )
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        death = wait_until(
            lambda: next((m for m in collector.of(NodeLifecycle) if m.state is NodeState.OFFLINE), None),
            20,
            "the Last Will",
        )
    finally:
        if process.poll() is None:
            process.kill()
    assert death.bd_seq == birth.bd_seq
    assert death.reason == "connection lost"


def test_a_detection_the_contract_refuses_costs_that_frame_only(
    tmp_path: Path, mqtt_url: str, facility: Facility, collector: Collector
) -> None:
    """A model gone wrong (here an extent far outside its camera's view, which no Detection may
    carry) loses that frame's detection, logged; the node goes on, and leaves no gap in the numbers."""
    node = EdgeNode.open(node_config(tmp_path, mqtt_url), facility, with_sim())
    estimate = node.estimator.estimate
    broken = {"calls": 0, "left": 3}

    def sometimes_wrong(frames: list[tuple[str, Any]]) -> list[list[LocoExtent]]:
        results = estimate(frames)
        broken["calls"] += 1
        if broken["calls"] > 2 and broken["left"] > 0:  # after some good ones, so a gap would show
            broken["left"] -= 1
            outside = LocoExtent(
                start_m=60, end_m=65, start_beyond_view=False, end_beyond_view=False, confidence=0.9
            )
            results[0] = [outside]
        return results

    node.estimator.estimate = sometimes_wrong  # type: ignore[method-assign]
    node.start()
    try:
        wait_until(lambda: len(collector.of(Detection)) >= 20, 20, "detections after the refused ones")
    finally:
        node.stop()
    assert broken["left"] == 0
    seqs = sorted(d.seq for d in collector.of(Detection))
    assert seqs == list(range(len(seqs)))
