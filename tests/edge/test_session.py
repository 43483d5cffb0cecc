"""The node session on its own, against a real broker (no capture, no model): a birth with the birth
sequence drawn at start, a clean death with the same one, and a rebirth on request, acknowledged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from edge.capture import CameraWorker, FrameSource
from edge.config import CaptureConfig, ThumbnailConfig
from edge.observability import EdgeMetrics
from edge.session import NodeSession
from edge.spool import Spool
from edge.thumbnails import ThumbnailMaker
from shared.codec import encode
from shared.layout import Facility
from shared.messages import CommandAck, CommandRequest, NodeLifecycle, NodeState, NodeStatus, Rebirth
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests.collector import Collector
from tests.edge.nodes import NODE
from tests.waiting import wait_until


def _never_opened() -> FrameSource:
    raise AssertionError("the session never opens a camera")


def _session(facility: Facility, site: str, url: str, spool: Spool) -> tuple[NodeSession, MqttConnection]:
    cameras = facility.cameras_of_node(NODE)
    capture = CaptureConfig()
    workers = {
        cid: CameraWorker(cid, NODE, _never_opened, capture.defaults, capture, lambda *_: None)
        for cid in sorted(cameras)
    }
    link = MqttConnection(
        BrokerConfig(url=url),
        f"session-{uuid.uuid4().hex[:6]}",
        on_connect=lambda: session.connected(),
        on_disconnect=lambda: session.disconnected(),
    )
    session = NodeSession(
        site=site,
        node_id=NODE,
        link=link,
        spool=spool,
        workers=workers,
        cameras=cameras,
        thumbnails=ThumbnailMaker(cameras, ThumbnailConfig()),
        metrics=EdgeMetrics(),
        status_interval_s=1.0,
        recalibrate=lambda _command, _by: None,  # the node's part, tested in test_recalibration
    )
    return session, link


def test_birth_rebirth_on_request_and_clean_death_carry_one_birth_sequence(
    tmp_path: Path, facility: Facility, mqtt_url: str, site: str, collector: Collector
) -> None:
    spool = Spool(tmp_path / "spool.sqlite", 1_000_000)
    spool.next_counter("bd_seq")  # an earlier session: this one is the second
    session, link = _session(facility, site, mqtt_url, spool)
    session.start()
    link.start()
    try:
        assert link.wait_connected(5) and link.wait_subscribed(5)
        wait_until(lambda: collector.of(NodeLifecycle), 5, "the birth")
        request = CommandRequest(command_id=uuid.uuid4(), issued_at=datetime.now(UTC), command=Rebirth())
        link.publish(str(Topic(TopicKind.COMMAND, site, NODE)), encode(request))
        [ack] = wait_until(lambda: collector.of(CommandAck), 5, "the command's ack")
        wait_until(lambda: len(collector.of(NodeLifecycle)) == 2, 5, "the rebirth")
        status = wait_until(lambda: collector.of(NodeStatus), 5, "the node status")[0]
    finally:
        session.stop()
        link.stop()
        spool.close()
    wait_until(lambda: len(collector.of(NodeLifecycle)) == 3, 5, "the clean death")
    assert ack.command_id == request.command_id and ack.accepted
    lifecycle = [(m.state, m.bd_seq, m.reason) for m in collector.of(NodeLifecycle)]
    assert lifecycle == [
        (NodeState.ONLINE, 1, ""),
        (NodeState.ONLINE, 1, ""),
        (NodeState.OFFLINE, 1, "clean shutdown"),
    ]
    assert collector.of(NodeLifecycle)[0].cameras == ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]
    assert status.cameras_total == 4 and status.cameras_online == 0  # no camera was ever opened
