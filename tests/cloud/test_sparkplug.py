"""The cloud as Sparkplug B 3.0's primary host and the facility as a Sparkplug edge node, checked on a
real broker with Eclipse Tahu's decoder: the retained STATE (online, and offline by its Will when the
cloud's connection dies), the facility's births and report by exception from the live state, Rebirth,
and the bdSeq/seq rules."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, select

from cloud.auth import Role, create_key
from cloud.config import SparkplugConfig
from cloud.db.models import ObservationRow
from cloud.sparkplug_facility import station_device, track_device
from edge.config import SparkplugConfig as EdgeSparkplug
from edge.node import EdgeNode
from shared.layout import Facility, parse_facility
from sim.edge_source import with_sim
from tests.cloud.servers import Server, publish_locomotive
from tests.conftest import DatabaseFactory
from tests.edge.nodes import NODE, facility_data, node_config
from tests.edge.test_sparkplug import _seqs_are_consecutive
from tests.sparkplug import (
    Received,
    SparkplugRecorder,
    TahuCodec,
    metric_types,
    metric_values,
    now_ms,
    publish_raw,
    retained,
)
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until


def _ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"host-{tag}", f"facility-{tag}"


def _state(url: str, host: str) -> dict[str, Any] | None:
    payload = retained(url, f"spBv1.0/STATE/{host}")
    return None if payload is None else json.loads(payload)


def _json(message: Received) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(message.payload)
    return decoded


def _device_now(recorder: SparkplugRecorder, node: str, device: str) -> dict[str, Any]:
    """A device's metrics as a SCADA has them now: its last DBIRTH, updated by the DDATA since."""
    values: dict[str, Any] = {}
    for message, decoded in recorder.sequence(node):
        if message.topic.endswith(f"/{device}"):
            if message.kind == "DBIRTH":
                values = metric_values(decoded)
            elif message.kind == "DDATA":
                values |= metric_values(decoded)
    return values


def _device(recorder: SparkplugRecorder, node: str, kind: str, device: str) -> list[dict[str, Any]]:
    return [
        recorder.codec.decode(m.payload) for m in recorder.of(kind, node) if m.topic.endswith(f"/{device}")
    ]


def test_the_facility_is_born_reported_by_exception_and_the_state_goes_offline_on_stop(
    database_factory: DatabaseFactory,
    mqtt_url: str,
    facility: Facility,
    recorder: SparkplugRecorder,
    codec: TahuCodec,
) -> None:
    host, node = _ids()
    started = now_ms()
    sparkplug = SparkplugConfig(enabled=True, host_id=host, node_id=node, interval_s=0.3)
    server = Server(database_factory(), mqtt_url, facility, sparkplug=sparkplug)
    try:
        online = wait_until(lambda: (s := _state(mqtt_url, host)) and s["online"] and s, 20, "STATE online")
        devices = len(facility.tracks) + len(facility.stations)
        wait_until(lambda: len(recorder.of("DBIRTH", node)) >= devices, 20, "a DBIRTH per track and station")
        publish_locomotive(mqtt_url, facility)
        viewer = create_key(server.service.engine, Role.VIEWER, "scada test")

        def settled() -> dict[str, Any] | None:
            locos = server.call("/api/state", viewer)[1]["tracks"][0]["locos"]
            return locos[0] if locos and locos[0]["end_seen"] and locos[0]["start_seen"] else None

        loco = wait_until(settled, 10, "the locomotive fused")
        head = f"Locomotives/{loco['loco_id']}/Head m"

        def reported() -> dict[str, Any] | None:
            values = _device_now(recorder, node, track_device("T1"))
            return values if values.get(head) == pytest.approx(loco["end_m"], abs=0.01) else None

        track = wait_until(reported, 10, "T1 born again with the locomotive")
        station = loco["station"]
        assert station, "the staged locomotive stands at no station"
        wait_until(
            lambda: any(
                metric_values(d).get("Occupied By") == loco["loco_id"]
                for d in _device(recorder, node, "DDATA", station_device(station))
            ),
            10,
            f"a DDATA of {station} occupied by the locomotive",
        )
        rebirth = codec.encode(
            {
                "timestamp": now_ms(),
                "metrics": [{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}],
            }
        )
        born = len(recorder.of("NBIRTH", node))
        publish_raw(mqtt_url, f"spBv1.0/{facility.site}/NCMD/{node}", rebirth)
        wait_until(lambda: len(recorder.of("NBIRTH", node)) > born, 10, "the rebirth")
    finally:
        server.stop()
    offline = wait_until(lambda: (s := _state(mqtt_url, host)) and not s["online"] and s, 10, "STATE offline")
    wait_until(lambda: recorder.of("NDEATH", node), 5, "the facility's NDEATH")

    # The stop's offline STATE carries the timestamp of the session that said online last (amqtt may
    # have ended an earlier one as several clients connected at once: a new session, a newer one).
    said = [_json(m) for m in recorder.of("STATE") if m.topic == f"spBv1.0/STATE/{host}"]
    last_online = [st for st in said if st["online"]][-1]
    assert started <= online["timestamp"] <= last_online["timestamp"] == offline["timestamp"]
    assert track["Occupied"] is True and track["Locomotive Count"] == 1
    assert track[f"Locomotives/{loco['loco_id']}/Tail m"] == pytest.approx(loco["start_m"], abs=0.01)
    assert track[f"Locomotives/{loco['loco_id']}/Station"] == station
    assert track[f"Locomotives/{loco['loco_id']}/Number"] is None  # not read yet: a null metric
    types = metric_types(_device(recorder, node, "DBIRTH", track_device("T1"))[-1])
    assert types[head] == "Double" and types[f"Locomotives/{loco['loco_id']}/Since"] == "DateTime"
    births = [codec.decode(m.payload) for m in recorder.of("NBIRTH", node)]
    death = codec.decode(recorder.of("NDEATH", node)[-1].payload)
    # The rebirth keeps the session's bdSeq; the stop's NDEATH carries the last birth's.
    assert metric_values(births[born])["bdSeq"] == metric_values(births[born - 1])["bdSeq"]
    assert metric_values(death)["bdSeq"] == metric_values(births[-1])["bdSeq"]
    assert metric_values(births[0])["Properties/Site"] == facility.site
    assert not _seqs_are_consecutive(recorder.sequence(node))
    assert not [d for d in _device(recorder, node, "DDATA", track_device("T2")) if d["metrics"]], (
        "DDATA for a track where nothing changed"
    )


def test_the_host_s_will_says_offline_when_its_connection_dies_and_it_comes_back_newer(
    database_factory: DatabaseFactory,
    mqtt_url: str,
    facility: Facility,
    recorder: SparkplugRecorder,
    codec: TahuCodec,
) -> None:
    parts = urlsplit(mqtt_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 1883)).start()
    host, node = _ids()
    sparkplug = SparkplugConfig(enabled=True, host_id=host, node_id=node)
    server = Server(database_factory(), f"mqtt://127.0.0.1:{proxy.port}", facility, sparkplug=sparkplug)
    try:
        wait_until(lambda: (s := _state(mqtt_url, host)) and s["online"] and s, 20, "STATE online")
        wait_until(lambda: recorder.of("NBIRTH", node), 10, "the facility's NBIRTH")
        # The sessions up now: the latest STATE and NBIRTH before the cut.
        first = [_json(m) for m in recorder.of("STATE") if m.topic.endswith(f"/{host}")][-1]
        birth = codec.decode(recorder.of("NBIRTH", node)[-1].payload)
        cut = len(recorder.messages)
        proxy.set_mode("reset")  # the cloud's connections die without a DISCONNECT
        will = wait_until(lambda: (s := _state(mqtt_url, host)) and not s["online"] and s, 15, "the Will")
        wait_until(lambda: recorder.of("NDEATH", node), 15, "the facility's Will, an NDEATH")
        proxy.set_mode("forward")
        again = wait_until(
            lambda: (
                (s := _state(mqtt_url, host)) and s["online"] and s["timestamp"] > first["timestamp"] and s
            ),
            40,
            "STATE online again, of a newer session",
        )
        wait_until(lambda: len(recorder.of("NBIRTH", node)) >= 2, 40, "the facility born again")
    finally:
        server.stop()
        proxy.stop()
    after = recorder.messages[cut:]
    assert first["online"]
    # The Will of the session that said online, or of a later one: the host may have connected again
    # just before the cut (its online STATE not recorded yet), or a reconnect attempt's CONNECT may
    # have reached the broker before the proxy reset it.
    offline = [_json(m) for m in after if m.topic == f"spBv1.0/STATE/{host}" and not _json(m)["online"]]
    assert offline and all(o["timestamp"] >= first["timestamp"] for o in offline)
    assert first["timestamp"] <= will["timestamp"] < again["timestamp"]
    deaths = [codec.decode(m.payload) for m in after if m.topic.endswith(f"/NDEATH/{node}")]
    reborn = [codec.decode(m.payload) for m in after if m.topic.endswith(f"/NBIRTH/{node}")]
    assert metric_values(deaths[0])["bdSeq"] >= metric_values(birth)["bdSeq"]
    assert metric_values(reborn[0])["bdSeq"] > metric_values(deaths[0])["bdSeq"]


def test_an_edge_node_holds_its_spool_while_the_cloud_is_away_and_loses_nothing(
    tmp_path: Path, database_factory: DatabaseFactory, mqtt_url: str
) -> None:
    """The cloud as primary host and a real edge node waiting for it: while the cloud is stopped the
    node holds its detections; when a cloud is back on the same database, they all arrive."""
    host, node = _ids()
    # A site of its own: the node's retained status must not reach other tests on the same broker.
    facility = parse_facility(facility_data(f"test-{uuid.uuid4().hex[:8]}"))
    url = database_factory()
    cloud = SparkplugConfig(enabled=True, host_id=host, node_id=node)
    edge_config = node_config(tmp_path, mqtt_url, sparkplug=EdgeSparkplug(enabled=True, primary_host_id=host))
    server = Server(url, mqtt_url, facility, sparkplug=cloud)
    edge = EdgeNode.open(edge_config, facility, with_sim())
    edge.start()
    try:
        wait_until(lambda: len(_stored_seqs(server)) >= 8, 30, "detections stored by the first cloud")
        server.stop()
        wait_until(lambda: edge.health()["spool_held"], 10, "the node to hold its spool")
        wait_until(lambda: edge.spool.depth() >= 12, 30, "detections held on the node")
        held = sum(n for topic, n in edge.spool.depth_by_topic().items() if "/det/" in topic)
        before = len(_stored_seqs(server))
        server = Server(url, mqtt_url, facility, sparkplug=cloud)
        wait_until(lambda: not edge.health()["spool_held"], 20, "the node to send again")
        stored = wait_until(
            lambda: (
                (s := _stored_seqs(server))
                and len(s) >= before + held
                and set(range(max(s) + 1)) <= s.keys()
                and s
            ),
            30,
            "every detection stored, the held ones too, none missing",
        )
    finally:
        edge.stop()
        server.stop()
    assert any(stored.values()), "what the node held came as live, not as backlog"


def _stored_seqs(server: Server) -> dict[int, bool]:
    """The sequence numbers of edge-bay1's prod detections stored, and whether each came as backlog."""
    with Session(server.service.engine) as session:
        rows = session.exec(
            select(ObservationRow.seq, ObservationRow.historical).where(
                ObservationRow.node_id == NODE, ObservationRow.flow == "prod"
            )
        ).all()
    return dict(rows)
