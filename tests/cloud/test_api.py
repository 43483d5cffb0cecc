"""The cloud service end to end over real HTTP: MQTT in, REST out, keys and roles enforced, state
kept across a restart."""

from __future__ import annotations

import copy
import json
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.api import server as http_server
from cloud.auth import Role, create_key
from shared.codec import encode
from shared.layout import Facility, load_facility
from shared.messages import CommandRequest
from shared.mqtt import BrokerConfig, MqttConnection
from shared.seen import seen_stretches
from shared.topics import Topic, TopicKind
from tests.cloud.servers import Server, publish_locomotive
from tests.conftest import EXAMPLE_LAYOUT, DatabaseFactory
from tests.waiting import wait_until


@pytest.fixture
def database(database_factory: DatabaseFactory) -> str:
    return database_factory()


@pytest.fixture
def server(database: str, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database, mqtt_url, facility)
    yield s
    s.stop()


def test_state_locomotives_events_and_roles_over_http(
    server: Server, mqtt_url: str, facility: Facility
) -> None:
    viewer = create_key(server.service.engine, Role.VIEWER, "map")
    operator = create_key(server.service.engine, Role.OPERATOR, "shift lead")
    admin = create_key(server.service.engine, Role.ADMIN, "it")
    publish_locomotive(mqtt_url, facility)

    assert server.call("/api/state")[0] == 401
    assert server.call("/api/state", "dw_not-a-key")[0] == 401

    def fused() -> tuple[int, Any] | None:
        response = server.call("/api/state", viewer)
        locos = response[1]["tracks"][0]["locos"]
        return response if locos and locos[0]["end_seen"] and locos[0]["start_seen"] else None

    status, state = wait_until(fused, 10, "the locomotive seen by both cameras")
    assert status == 200
    [loco] = state["tracks"][0]["locos"]
    assert (loco["start_m"], loco["end_m"]) == pytest.approx((18.0, 36.0), abs=0.11)
    assert loco["start_seen"] and loco["end_seen"]

    status, tracks = server.call("/api/tracks", viewer)
    stations = {s["station_id"]: s["occupied_by"] for s in tracks[0]["stations"]}
    assert stations[loco["station"]] == [loco["loco_id"]]

    wait_until(lambda: server.call("/api/locomotives", viewer)[1], 5, "the stored locomotive")
    assert server.call(f"/api/locomotives/{loco['loco_id']}", viewer)[1]["track_id"] == "T1"
    assert server.call(f"/api/locomotives/{loco['loco_id']}/history", viewer)[1]
    assert server.call("/api/locomotives/L99999", viewer)[0] == 404

    status, page = server.call("/api/events?kind=arrived&track=T1", viewer)
    assert status == 200 and page["total"] >= 1 and page["items"][0]["loco_id"] == loco["loco_id"]
    status, error = server.call("/api/events?kind=teleported", viewer)
    assert status == 422 and "kind" in json.dumps(error)
    assert server.call("/api/events?limit=0", viewer)[0] == 422
    assert server.call("/api/state?at=2026-03-02T10:00:00", viewer)[0] == 422

    wait_until(lambda: server.call("/api/nodes", viewer)[1], 5, "the node")
    assert server.call("/api/nodes", viewer)[1][0]["state"] == "online"

    assert server.call("/api/dead-letters", viewer) == (
        403,
        {"detail": "this needs an operator key, yours is a viewer key"},
    )
    assert server.call("/api/dead-letters", operator)[0] == 200
    assert server.call("/api/dead-letters", operator, method="DELETE")[0] == 403
    assert server.call("/api/dead-letters", admin, method="DELETE")[0] == 204

    status, metrics = server.call("/metrics")
    assert status == 200 and b"depotwatch_cloud_ingest_stored" in metrics
    assert (
        b"depotwatch_cloud_ingest_lag_seconds" in metrics
        and b"depotwatch_cloud_fse_update_seconds" in metrics
    )
    assert server.call("/healthz")[1]["mqtt_connected"] is True


def test_operators_send_commands_that_reach_the_node(
    server: Server, mqtt_url: str, facility: Facility
) -> None:
    operator = create_key(server.service.engine, Role.OPERATOR)
    viewer = create_key(server.service.engine, Role.VIEWER)
    received: list[bytes] = []
    node = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    node.subscribe(
        str(Topic(TopicKind.COMMAND, facility.site, "edge-bay2")), lambda _t, p: received.append(p)
    )
    node.start()
    assert node.wait_connected(5) and node.wait_subscribed(5)
    try:
        body = {"action": "set_sample_rate", "camera_id": "T2-C1", "fps": 1.0}
        assert server.call("/api/nodes/edge-bay2/commands", viewer, "POST", body)[0] == 403
        assert server.call("/api/nodes/edge-bay9/commands", operator, "POST", body)[0] == 404
        assert server.call("/api/nodes/edge-bay2/commands", operator, "POST", {"action": "explode"})[0] == 422
        status, accepted = server.call("/api/nodes/edge-bay2/commands", operator, "POST", body)
        assert status == 202
        wait_until(lambda: received, 5, "the command at the node")
    finally:
        node.stop()
    request = CommandRequest.model_validate_json(received[0])
    assert str(request.command_id) == accepted["command_id"] and request.issued_by == "api:operator"


def test_state_survives_a_restart(database: str, mqtt_url: str, facility: Facility, tmp_path: Path) -> None:
    first = Server(database, mqtt_url, facility)
    key = create_key(first.service.engine, Role.VIEWER)
    try:
        sent = publish_locomotive(mqtt_url, facility)
        before = wait_until(
            lambda: (r := first.call("/api/locomotives", key)[1]) and r[0]["end_seen"] and r,
            10,
            "the locomotive",
        )
        first.service.store.snapshot(datetime.now(UTC), first.service.fse.state())
    finally:
        first.stop()
    second = Server(database, mqtt_url, facility)
    try:
        after = second.call("/api/locomotives", key)[1]
        state = second.call("/api/state", key)[1]
        past = second.call(f"/api/state?at={datetime.now(UTC).isoformat().replace('+00:00', 'Z')}", key)
        too_early = second.call("/api/state?at=2020-01-01T00:00:00Z", key)
        # A detection stored before the restart, delivered again, is not fused a second time.
        link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
        link.start()
        assert link.wait_connected(5)
        topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", flow="prod", camera=sent[-1].camera_id)
        link.publish(str(topic), encode(sent[-1]))
        wait_until(lambda: second.service.ingest.counts.redelivered == 1, 5, "the redelivery recognised")
        link.stop()
    finally:
        second.stop()
    assert [loco["loco_id"] for loco in after] == [loco["loco_id"] for loco in before]
    assert state["tracks"][0]["locos"][0]["loco_id"] == before[0]["loco_id"]
    # What the cameras saw moments before the restart still counts: what they vouch for (their seen
    # stretches) is not unknown.
    seen = seen_stretches(facility, "T1")
    for a, b in state["tracks"][0]["unknown"]:
        assert all(b <= lo or a >= hi for lo, hi in (seen["T1-C2"], seen["T1-C3"])), (a, b)
    assert past[0] == 200 and past[1]["tracks"][0]["locos"][0]["loco_id"] == before[0]["loco_id"]
    assert too_early[0] == 404


def test_admins_replace_the_layout_and_the_state_follows(
    database: str, mqtt_url: str, facility: Facility, tmp_path: Path
) -> None:
    layout = tmp_path / "facility.yaml"
    shutil.copy(EXAMPLE_LAYOUT, layout)
    server = Server(database, mqtt_url, facility, layout=layout)
    viewer = create_key(server.service.engine, Role.VIEWER)
    admin = create_key(server.service.engine, Role.ADMIN)
    try:
        publish_locomotive(mqtt_url, facility)
        [loco] = wait_until(lambda: server.call("/api/locomotives", viewer)[1], 10, "the locomotive")
        status, document = server.call("/api/layout", viewer)
        assert status == 200 and set(document["cameras"]) == set(facility.cameras)

        assert server.call("/api/layout", viewer, "PUT", document)[0] == 403
        broken = copy.deepcopy(document)
        broken["cameras"]["T1-C2"]["track"] = "T9"
        status, body = server.call("/api/layout", admin, "PUT", broken)
        assert status == 422 and any(issue["key"] == "cameras.T1-C2.track" for issue in body["detail"])
        moved = copy.deepcopy(document) | {"site": "elsewhere"}
        assert server.call("/api/layout", admin, "PUT", moved)[0] == 409

        document["tracks"]["T1"]["name"] = "Bay 1 (renamed)"
        del document["stations"]["T1-B"]
        status, _ = server.call("/api/layout", admin, "PUT", document)
        assert status == 200
        [t1] = [t for t in server.call("/api/state", viewer)[1]["tracks"] if t["track_id"] == "T1"]
        assert t1["name"] == "Bay 1 (renamed)" and [s["station_id"] for s in t1["stations"]] == ["T1-A"]
        assert [x["loco_id"] for x in t1["locos"]] == [loco["loco_id"]]
    finally:
        server.stop()
    assert load_facility(layout).tracks["T1"].name == "Bay 1 (renamed)"
    assert (
        load_facility(layout.with_name("facility.yaml.previous")).tracks["T1"].name
        == facility.tracks["T1"].name
    )


def test_retention_deletes_only_what_is_older_than_the_cutoff(
    server: Server, mqtt_url: str, facility: Facility
) -> None:
    publish_locomotive(mqtt_url, facility)
    store = server.service.store
    wait_until(lambda: server.service.ingest.counts.stored >= 6, 10, "stored detections")
    now = datetime.now(UTC)
    store.snapshot(now - timedelta(days=100), server.service.fse.state())
    store.snapshot(now, server.service.fse.state())
    assert store.purge(now - timedelta(days=90)) == 1  # the old snapshot only
    assert store.purge(now + timedelta(minutes=1)) >= 6 + 1  # everything up to now


def test_live_events_stream_as_server_sent_events(server: Server, mqtt_url: str, facility: Facility) -> None:
    key = create_key(server.service.engine, Role.VIEWER)
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/api/events/stream", headers={"X-API-Key": key}
    )
    lines: list[str] = []
    with urllib.request.urlopen(request, timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.readline().startswith(b": connected")
        publish_locomotive(mqtt_url, facility)
        while not any(line.startswith("data:") and "arrived" in line for line in lines):
            lines.append(stream.readline().decode())
    event = json.loads(next(line for line in lines if "arrived" in line).removeprefix("data: "))
    assert event["kind"] == "arrived" and event["track_id"] == "T1"


def test_the_live_stream_sends_the_state_on_every_change_and_the_events(
    server: Server, mqtt_url: str, facility: Facility
) -> None:
    key = create_key(server.service.engine, Role.VIEWER)
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/live", headers={"X-API-Key": key})
    messages: list[tuple[str, Any]] = []
    with urllib.request.urlopen(request, timeout=10) as stream:
        kind = ""
        published = False
        while not (
            any(k == "event" for k, _ in messages)
            and any(k == "state" and d["tracks"][0]["locos"] for k, d in messages)
        ):
            line = stream.readline().decode().strip()
            if line.startswith("event:"):
                kind = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                messages.append((kind, json.loads(line.removeprefix("data:"))))
                if not published:  # the state right away, before anything happened
                    assert messages[0][0] == "state" and messages[0][1]["tracks"][0]["locos"] == []
                    publish_locomotive(mqtt_url, facility)
                    published = True
    [loco] = next(d for k, d in messages if k == "state" and d["tracks"][0]["locos"])["tracks"][0]["locos"]
    assert loco["track_id"] == "T1" and loco["start_m"] == pytest.approx(18.0, abs=0.2)


def test_the_map_page_and_its_assets_are_served(server: Server) -> None:
    status, page = server.call("/")
    assert status == 200 and b"/static/map.js" in page
    for asset in ("/static/map.js", "/static/map.css"):
        assert server.call(asset)[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/events?offset=9223372036854775808",
        "/api/events?offset=100000000000000000000",
        "/api/events?since=2026-03-02T10:00:00",
        "/api/events?until=0001-01-01T00:00:00%2B14:00",
        "/api/events?since=9999-12-31T23:00:00-05:00",
        "/api/locomotives/L00001/history?since=0001-01-01T00:00:00%2B14:00",
        "/api/locomotives/L00001/history?until=2026-03-02T10:00:00",
        "/api/state?at=0001-01-01T00:00:00%2B14:00",
        "/api/state?at=9999-12-31T23:00:00-05:00",
        "/api/flows/compare?a=prod&b=prod&since=2026-03-02T10:00:00Z&until=2026-03-02T11:00:00Z&step_s=inf",
        "/api/flows/compare?a=prod&b=prod&since=2026-03-02T10:00:00Z&until=2026-03-02T11:00:00Z&step_s=nan",
        "/api/flows/compare?a=prod&b=prod&since=0001-01-01T00:00:00Z&until=2026-03-02T11:00:00Z",
    ],
)
def test_out_of_range_queries_get_a_4xx_with_the_reason(server: Server, path: str) -> None:
    viewer = create_key(server.service.engine, Role.VIEWER)
    status, answer = server.call(path, viewer)
    assert status == 422, answer
    assert answer["detail"][0]["msg"]


def test_an_oversized_request_head_is_answered_not_reset(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /api/state?" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"exceed" in answer
    assert server.call("/healthz")[0] == 200  # and the server goes on


def test_a_connection_that_never_completes_its_request_is_closed(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "REQUEST_HEAD_TIMEOUT_S", 0.5)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as idle:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as partial:
            partial.sendall(b"GET /healthz HTTP/1.1\r\nHost")  # and then nothing more
            assert _read_all(partial).startswith(b"HTTP/1.1 408 ")
        assert _read_all(idle) == b""  # closed without a word: it never asked anything


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
