"""The edge node across its sessions with the broker: a node killed with messages the broker never
acknowledged sends them after its restart, and a late Will of an older session does not leave the
node marked offline."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from depotwatch.embedded_broker import free_port
from edge.node import EdgeNode
from edge.spool import Kind, Spool
from shared.codec import decode, encode
from shared.layout import parse_facility
from shared.messages import Detection, NodeLifecycle, NodeState
from shared.mqtt import BrokerConfig, MqttConnection, Will
from shared.topics import Topic, TopicKind
from sim.edge_source import with_sim
from tests.collector import Collector
from tests.edge.nodes import NODE, facility_data, node_config
from tests.factories import node_birth
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def proxy(mqtt_url: str) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test broker."""
    parts = urlsplit(mqtt_url)
    p = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 1883)).start()
    yield p
    p.stop()


class NodeProcess:
    """`depotwatch edge run` in a process of its own, so that it can be killed with SIGKILL."""

    def __init__(self, tmp_path: Path, site: str, broker_url: str) -> None:
        layout = tmp_path / "facility.yaml"
        layout.write_text(yaml.safe_dump(facility_data(site)))
        self.spool = tmp_path / "spool.sqlite"
        self.http_port = free_port()
        config = {
            "node_id": NODE,
            "layout": str(layout),
            # A long keepalive: while the proxy holds its packets the node stays connected and sends.
            "broker": {"url": broker_url, "keepalive_s": 60},
            "spool": {"path": str(self.spool), "backlog_rate_per_s": 400},
            "capture": {"defaults": {"sample_fps": 4, "motion_gating": False}},
            "metrics": {"port": self.http_port},
        }
        self.config = tmp_path / "edge.yaml"
        self.config.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "depotwatch.cli", "edge", "run", "--config", str(self.config)],
            cwd=REPO,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )

    def kill(self) -> None:
        """SIGKILL: whatever the node held in memory (its messages in flight) is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2) as r:
                health: dict[str, Any] = json.loads(r.read())
                return health
        except OSError:  # not listening yet, or 503 while the broker is unreachable
            return None

    def connected(self) -> bool:
        return bool((health := self.health()) and health["mqtt_connected"])

    def last_seq(self) -> int:
        """The newest detection sequence number the node has given out (-1 before the first)."""
        with sqlite3.connect(self.spool) as db:
            row = db.execute("SELECT value FROM counters WHERE name = 'detection_seq'").fetchone()
        return -1 if row is None else int(row[0])

    def spooled_seqs(self) -> set[int]:
        """The sequence numbers of the detections still in the spool file."""
        with sqlite3.connect(self.spool) as db:
            rows = db.execute("SELECT payload FROM outbox WHERE kind = ?", (Kind.DETECTION.value,)).fetchall()
        return {decode(Detection, bytes(payload)).seq for (payload,) in rows}


def _received(collector: Collector) -> set[int]:
    return {d.seq for d in collector.of(Detection) if d.node_id == NODE and d.flow == "prod"}


def test_a_node_killed_with_detections_in_flight_sends_them_after_its_restart(
    tmp_path: Path, site: str, proxy: TcpProxy, collector: Collector
) -> None:
    """A detection leaves the spool only on the broker's PUBACK: detections published into a network
    that delivers nothing are still in the spool file when the node is killed, and arrive after it
    restarts."""
    node = NodeProcess(tmp_path, site, f"mqtt://127.0.0.1:{proxy.port}")
    node.start()
    try:
        wait_until(node.connected, 30, "the node to connect")
        wait_until(lambda: len(_received(collector)) >= 4, 10, "the first detections")
        # Packets are dropped from now on: the node goes on publishing, no PUBACK comes back.
        proxy.set_mode("blackhole")
        first_unsent = node.last_seq() + 1
        wait_until(lambda: node.last_seq() >= first_unsent + 12, 10, "a dozen detections after the drop")
        assert node.connected(), "the node noticed the dropped packets: nothing was in flight"
        node.kill()
        # The bytes the proxy held are lost with the connection, as on a real network.
        proxy.set_mode("reset")
        proxy.set_mode("forward")
        # The newest number may have been given out just before the kill, its detection not yet stored.
        expected = set(range(node.last_seq()))
        missing = expected - _received(collector)
        spooled = node.spooled_seqs()
        assert len(missing) >= 12, (
            first_unsent,
            node.last_seq(),
            sorted(missing),
            sorted(_received(collector)),
        )
        assert missing <= spooled, (
            f"{len(missing - spooled)} detections the broker never acknowledged are gone from the "
            f"spool: {sorted(missing - spooled)[:10]}"
        )
        node.start()
        wait_until(lambda: expected <= _received(collector), 20, "every detection after the restart")
    finally:
        node.stop()
    resent = [d for d in collector.of(Detection) if d.seq in missing]
    assert all(d.historical for d in resent), "detections from before the restart must be marked historical"


def test_a_late_will_of_an_older_session_is_answered_with_the_birth(
    tmp_path: Path, mqtt_url: str, site: str, proxy: TcpProxy, collector: Collector
) -> None:
    """The broker publishes the Will of a connection it noticed dead only after the node was back:
    the retained state says offline until the node republishes its birth."""
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10_000)
    older = spool.next_counter("bd_seq")  # the session before this one
    spool.close()
    node = EdgeNode.open(node_config(tmp_path, mqtt_url), parse_facility(facility_data(site)), with_sim())
    state_topic = str(Topic(TopicKind.NODE_STATE, site, NODE))

    def lifecycle(c: Collector) -> list[tuple[NodeState, int]]:
        return [(m.state, m.bd_seq) for m in c.of(NodeLifecycle) if m.node_id == NODE]

    node.start()
    ghost = None
    try:
        wait_until(lambda: (NodeState.ONLINE, older + 1) in lifecycle(collector), 10, "the birth")
        assert node.link.wait_subscribed(5)
        # The older session's connection, with its Will, ends only now (here: reset on the way). It
        # stands in under a client id of its own: under the node's, it would take the node's over.
        will = node_birth(
            node_id=NODE,
            state=NodeState.OFFLINE,
            bd_seq=older,
            at=datetime.now(UTC),
            reason="connection lost",
        )
        ghost = MqttConnection(
            BrokerConfig(url=f"mqtt://127.0.0.1:{proxy.port}"),
            f"older-session-{site}",
            will=Will(state_topic, encode(will)),
        )
        ghost.start()
        assert ghost.wait_connected(5)
        proxy.set_mode("reset")
        after_will = wait_until(
            lambda: (
                ((NodeState.OFFLINE, older) in (seen := lifecycle(collector)))
                and seen.index((NodeState.OFFLINE, older)) + 1
            ),
            10,
            "the late Will",
        )
        wait_until(
            lambda: (NodeState.ONLINE, older + 1) in lifecycle(collector)[after_will:],
            10,
            "the node to republish its birth after the late Will",
        )
        fresh = Collector(mqtt_url, site)
        try:
            retained = wait_until(lambda: lifecycle(fresh), 5, "the retained node state")
        finally:
            fresh.stop()
    finally:
        if ghost is not None:
            ghost.stop()
        node.stop()
    assert retained[0] == (NodeState.ONLINE, older + 1), "the retained state is not the node's birth"
