"""Camera snapshots through the cloud over a real broker, a real database and real HTTP: the latest one
per camera kept and served with what it shows, an older one replacing nothing, one the layout refuses
dead-lettered with the reason, and a fresh one asked of the camera's node."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message as Headers
from urllib.parse import urlsplit

import pytest

from cloud.auth import Role, create_key
from shared.codec import encode
from shared.layout import Facility
from shared.messages import CommandRequest, RequestSnapshot, Snapshot
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until


@pytest.fixture
def server(database_factory: DatabaseFactory, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database_factory(), mqtt_url, facility)
    yield s
    s.stop()


def _image(server: Server, camera_id: str, key: str) -> tuple[int, Headers, bytes]:
    """The status, headers and body of GET …/snapshot."""
    url = f"http://127.0.0.1:{server.port}/api/cameras/{camera_id}/snapshot"
    request = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _send(edge: MqttConnection, site: str, snapshot: Snapshot) -> None:
    topic = Topic(TopicKind.SNAPSHOT, site, snapshot.meta.node_id, camera=snapshot.meta.camera_id)
    assert edge.publish(str(topic), encode(snapshot)) is not None


def test_the_latest_snapshot_is_served_and_an_older_or_refused_one_replaces_nothing(
    server: Server, edge: MqttConnection, facility: Facility
) -> None:
    operator = create_key(server.service.engine, Role.OPERATOR)
    status, _, body = _image(server, "T1-C2", operator)
    assert status == 404 and b"camera T1-C2 has sent no snapshot yet" in body
    assert server.call("/api/cameras/T9-C9/snapshot/meta", operator) == (
        404,
        {"detail": "no camera 'T9-C9' in the layout"},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    latest = factories.snapshot(
        node_id="edge-bay1", camera_id="T1-C2", captured_at=now, width=1280, height=720
    )
    _send(edge, facility.site, latest)
    wait_until(lambda: _image(server, "T1-C2", operator)[0] == 200, 10, "the snapshot to be kept")
    _send(edge, facility.site, factories.snapshot(camera_id="T1-C2", captured_at=now - timedelta(minutes=1)))
    _send(edge, facility.site, factories.snapshot(node_id="edge-bay2", camera_id="T1-C2", captured_at=now))
    _send(edge, facility.site, factories.snapshot(camera_id="T9-C9", captured_at=now))
    refused = {
        "camera T1-C2 belongs to node edge-bay1 in the layout, not to edge-bay2",
        f"camera 'T9-C9' is not in the layout of {facility.site}",
    }
    # Written in arrival order: once the refusals are in, the older snapshot was handled before them.
    wait_until(
        lambda: refused <= {d["reason"] for d in server.call("/api/dead-letters", operator)[1]},
        10,
        "the refused snapshots as dead letters",
    )
    status, headers, jpeg = _image(server, "T1-C2", operator)
    meta = latest.meta
    assert status == 200 and jpeg == latest.jpeg and headers["Content-Type"] == "image/jpeg"
    assert {name: headers[name] for name in ("X-Snapshot-Id", "X-Captured-At", "X-Node-Id")} == {
        "X-Snapshot-Id": str(meta.snapshot_id),
        "X-Captured-At": now.isoformat(),
        "X-Node-Id": "edge-bay1",
    }
    assert headers["X-Calibration-Version"] == meta.calibration_version
    assert headers["X-Resolution"] == "1280x720"
    status, described = server.call("/api/cameras/T1-C2/snapshot/meta", operator)
    assert status == 200
    assert now <= datetime.fromisoformat(described.pop("received_at")) <= datetime.now(UTC)
    assert described == {
        "camera_id": "T1-C2",
        "node_id": "edge-bay1",
        "snapshot_id": str(meta.snapshot_id),
        "captured_at": now.isoformat().replace("+00:00", "Z"),
        "width": 1280,
        "height": 720,
        "calibration_version": meta.calibration_version,
        "requested_by": str(meta.requested_by),
        "size_bytes": len(latest.jpeg),
    }


def test_operators_ask_the_cameras_node_for_a_fresh_snapshot(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility
) -> None:
    parts = urlsplit(mqtt_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 1883)).start()
    server = Server(database_factory(), f"mqtt://127.0.0.1:{proxy.port}", facility)
    received: list[bytes] = []
    node = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    node.subscribe(
        str(Topic(TopicKind.COMMAND, facility.site, "edge-bay2")), lambda _t, p: received.append(p)
    )
    node.start()
    try:
        assert node.wait_connected(5) and node.wait_subscribed(5)
        operator = create_key(server.service.engine, Role.OPERATOR)
        status, accepted = server.call("/api/cameras/T2-C3/snapshot", operator, "POST")
        assert status == 202
        assert accepted["topic"] == str(Topic(TopicKind.COMMAND, facility.site, "edge-bay2"))
        wait_until(lambda: received, 5, "the request at the camera's node")
        assert server.call("/api/cameras/T9-C9/snapshot", operator, "POST") == (
            404,
            {"detail": "no camera 'T9-C9' in the layout"},
        )
        proxy.set_mode("reset")
        wait_until(lambda: not server.service.link.connected.is_set(), 10, "the cloud to lose the broker")
        assert server.call("/api/cameras/T2-C3/snapshot", operator, "POST") == (
            503,
            {"detail": "the broker is not reachable right now; nothing was sent"},
        )
    finally:
        node.stop()
        server.stop()
        proxy.stop()
    [payload] = received
    request = CommandRequest.model_validate_json(payload)
    assert str(request.command_id) == accepted["command_id"]
    assert request.command == RequestSnapshot(camera_id="T2-C3")
    assert request.issued_by == "api:operator"
