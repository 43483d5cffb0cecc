"""A snapshot the cloud asks a running node for: the camera's latest frame at full resolution, under the
calibration the node has for the camera when it is taken, over a real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge.node import EdgeNode
from shared.codec import encode
from shared.layout import Interval, parse_facility
from shared.messages import CommandAck, CommandRequest, RequestSnapshot, Snapshot
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from sim.edge_source import with_sim
from tests.collector import Collector
from tests.edge.nodes import NODE, facility_data, node_config
from tests.waiting import wait_until


def _ask(cloud: MqttConnection, site: str, camera_id: str) -> uuid.UUID:
    """Publish a RequestSnapshot to the node as the cloud does; returns its command id."""
    request = CommandRequest(
        command_id=uuid.uuid4(), issued_at=datetime.now(UTC), command=RequestSnapshot(camera_id=camera_id)
    )
    assert cloud.publish(str(Topic(TopicKind.COMMAND, site, NODE)), encode(request)) is not None
    return request.command_id


def _ack(collector: Collector, command_id: uuid.UUID) -> CommandAck:
    ack: CommandAck = wait_until(
        lambda: next((a for a in collector.of(CommandAck) if a.command_id == command_id), None),
        10,
        f"the ack of {command_id}",
    )
    return ack


def _snapshot(collector: Collector, command_id: uuid.UUID) -> tuple[Topic, Snapshot]:
    found: tuple[Topic, Snapshot] = wait_until(
        lambda: next(
            (
                (t, m)
                for t, m in list(collector.messages)
                if isinstance(m, Snapshot) and m.meta.requested_by == command_id
            ),
            None,
        ),
        10,
        f"the snapshot of {command_id}",
    )
    return found


def test_a_requested_snapshot_is_the_full_frame_under_the_calibration_in_force(
    tmp_path: Path, mqtt_url: str, site: str, collector: Collector
) -> None:
    data = facility_data(site)
    data["cameras"]["T1-C4"]["source"] = str(tmp_path / "no-such-camera.avi")  # never gives a frame
    facility = parse_facility(data)
    camera = facility.cameras["T1-C2"]
    node = EdgeNode.open(node_config(tmp_path, mqtt_url), facility, with_sim())
    cloud = MqttConnection(BrokerConfig(url=mqtt_url), f"cloud-{uuid.uuid4().hex[:6]}")
    started = datetime.now(UTC)
    node.start()
    cloud.start()
    try:
        assert node.link.wait_connected(10) and node.link.wait_subscribed(5)
        assert cloud.wait_connected(5)
        wait_until(lambda: node.workers["T1-C2"].latest is not None, 10, "a frame of T1-C2")
        asked = _ask(cloud, site, "T1-C2")
        elsewhere, dark = _ask(cloud, site, "T3-C1"), _ask(cloud, site, "T1-C4")
        topic, first = _snapshot(collector, asked)
        acks = {command_id: _ack(collector, command_id) for command_id in (asked, elsewhere, dark)}
        # A recalibration replaces the node's camera in its map: the next snapshot says so.
        moved = camera.model_copy(update={"view": Interval(start_m=camera.view.start_m + 1, end_m=30.0)})
        node.cameras["T1-C2"] = moved
        again = _ask(cloud, site, "T1-C2")
        _, second = _snapshot(collector, again)
    finally:
        cloud.stop()
        node.stop()
    assert topic == Topic(TopicKind.SNAPSHOT, site, NODE, camera="T1-C2")
    meta = first.meta
    assert (meta.node_id, meta.camera_id, meta.requested_by) == (NODE, "T1-C2", asked)
    assert (meta.width, meta.height) == camera.resolution == (1280, 720)
    image = cv2.imdecode(np.frombuffer(first.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (720, 1280, 3)
    assert float(image.std()) > 10  # a picture, not a blank
    assert started <= meta.captured_at <= datetime.now(UTC)
    assert meta.calibration_version == camera.calibration_version
    assert acks[asked].accepted
    assert not acks[elsewhere].accepted
    assert acks[elsewhere].reason == "camera 'T3-C1' is not served by node edge-bay1"
    assert not acks[dark].accepted
    assert acks[dark].reason.startswith("camera T1-C4 has given no frame yet (offline: ")
    assert second.meta.calibration_version == moved.calibration_version != camera.calibration_version
    assert not any(isinstance(m, Snapshot) and m.meta.camera_id == "T1-C4" for m in collector.of(Snapshot))
