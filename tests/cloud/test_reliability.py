"""The cloud service through faults, over real MQTT, a real database and real HTTP: a database outage
(PostgreSQL's connections reset or black-holed through a proxy; SQLite locked by another writer)
neither freezes the live state nor loses a detection or an event; health says when a part stops
progressing; a recognition is acknowledged only once its vote is saved; a layout swap never shows a
request half of each layout; a node that falls silent is not shown online for good."""

from __future__ import annotations

import asyncio
import copy
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, func, select

from cloud.api.deadline import Deadline
from cloud.api.server import make_server
from cloud.auth import Role, create_key
from cloud.config import CloudConfig, IngestConfig
from cloud.db.models import IdentityRow, ObservationRow, VoteRow
from cloud.fse import EventKind
from cloud.live import LiveFeed
from cloud.service import CloudService
from depotwatch.embedded_broker import free_port
from shared.codec import encode
from shared.layout import Facility
from shared.messages import Detection
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.cloud.servers import Server
from tests.conftest import DATABASE_ENV, EXAMPLE_LAYOUT, DatabaseFactory
from tests.tcp_proxy import TcpProxy
from tests.waiting import wait_until

POSTGRES = os.environ.get(DATABASE_ENV, "").startswith("postgresql")
# How the database goes away: PostgreSQL over the network, SQLite (a file) by another writer's lock.
OUTAGES = ["reset", "blackhole"] if POSTGRES else ["locked"]


class Outage:
    """Takes the database away and brings it back, for a service connected through `url`."""

    def __init__(self, kind: str, url: str) -> None:
        self.kind = kind
        self._proxy: TcpProxy | None = None
        self._lock: sqlite3.Connection | None = None
        self._path = ""
        if kind == "locked":
            self.url = url
            self._path = make_url(url).database or ""
        else:
            real = make_url(url)
            self._proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432)).start()
            self.url = real.set(host="127.0.0.1", port=self._proxy.port).render_as_string(hide_password=False)

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.set_mode("reset" if self.kind == "reset" else "blackhole")
        else:
            self._lock = sqlite3.connect(self._path, timeout=5, isolation_level=None)
            self._lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.set_mode("forward")
        elif self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None

    def close(self) -> None:
        self.end()
        if self._proxy is not None:
            self._proxy.stop()


@pytest.fixture(params=OUTAGES)
def outage(request: pytest.FixtureRequest, database_factory: DatabaseFactory) -> Iterator[Outage]:
    staged = Outage(request.param, database_factory())
    yield staged
    staged.close()


class Edge:
    """Publishes what edge nodes would: detections of the layout's cameras, numbered per node."""

    def __init__(self, mqtt_url: str, facility: Facility) -> None:
        self.facility = facility
        self.link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
        self.link.start()
        assert self.link.wait_connected(5)
        self.seq = int(time.time() * 1000) * 100
        self.sent: list[Detection] = []

    def see(self, camera: str, *extents: tuple[float, float]) -> None:
        self.seq += 1
        d = factories.detection_for(
            self.facility,
            camera,
            seq=self.seq,
            captured_at=datetime.now(UTC),
            extents=[factories.extent(a, b) for a, b in extents],
        )
        topic = Topic(TopicKind.DETECTION, self.facility.site, d.node_id, "prod", camera)
        assert self.link.publish(str(topic), encode(d)) is not None
        self.sent.append(d)

    def stop(self) -> None:
        self.link.stop()


def _stored(server: Server, sent: list[Detection]) -> int:
    with Session(server.service.engine) as session:
        return int(
            session.exec(select(func.count()).where(col(ObservationRow.seq).in_([d.seq for d in sent]))).one()
        )


def _locos_on(server: Server, key: str, track: str) -> list[dict[str, Any]]:
    status, state = server.call("/api/state", key)
    assert status == 200, state
    return next(t["locos"] for t in state["tracks"] if t["track_id"] == track)


def test_a_database_outage_neither_freezes_the_live_state_nor_loses_anything(
    outage: Outage, mqtt_url: str, facility: Facility
) -> None:
    server = Server(outage.url, mqtt_url, facility, health={"stall_s": 2.0})
    edge = Edge(mqtt_url, facility)
    viewer = create_key(server.service.engine, Role.VIEWER)
    live = server.service.live
    try:
        edge.see("T1-C2", (14.0, 22.0))
        wait_until(lambda: _locos_on(server, viewer, "T1"), 10, "the first locomotive")
        wait_until(
            lambda: server.call("/api/events?kind=arrived", viewer)[1]["total"] == 1, 10, "its arrival"
        )
        assert server.call("/healthz")[0] == 200

        outage.begin()
        arrived_before = _arrivals(live)
        stop = threading.Event()

        def keep_seeing() -> None:
            while not stop.wait(0.25):
                edge.see("T1-C2", (14.0, 22.0))
                edge.see("T2-C2", (20.0, 26.0))

        seeing = threading.Thread(target=keep_seeing)
        seeing.start()
        try:
            # The live state goes on from memory: a second locomotive appears on T2, in the API and in
            # the live feed the map reads.
            [second] = wait_until(lambda: _locos_on(server, viewer, "T2"), 10, "the second locomotive live")
            wait_until(lambda: _feed_has(live, "T2"), 10, "the second locomotive in the live feed")
            unhealthy = wait_until(lambda: server.call("/healthz")[0] == 503, 10, "health to say so")
            assert unhealthy and server.call("/healthz")[1]["problems"]
            if outage.kind != "locked":
                wait_until(lambda: not server.service.database.available, 15, "the database seen away")
                status, answer = server.call("/api/events", viewer)
                assert status == 503 and "not reachable" in answer["detail"]
                assert server.call("/api/state", viewer)[0] == 200  # the live state needs no database
            # Its arrival is not announced before it is saved.
            assert _arrivals(live) == arrived_before
        finally:
            outage.end()
            stop.set()
            seeing.join()
        wait_until(lambda: _stored(server, edge.sent) == len(edge.sent), 30, "every detection stored")
        wait_until(lambda: _arrivals(live) == arrived_before + 1, 15, "the arrival announced once saved")
        status, page = wait_until(
            lambda: (answer := server.call("/api/events?kind=arrived&track=T2", viewer))[0] == 200 and answer,
            10,
            "the event history readable again",
        )
        assert [e["loco_id"] for e in page["items"]] == [second["loco_id"]]
        wait_until(lambda: server.call("/healthz")[0] == 200, 15, "health back")
    finally:
        edge.stop()
        server.stop()


def _feed_has(live: LiveFeed, track: str) -> bool:
    return any(t.track_id == track and t.locos for t in live.state)


def _arrivals(live: object) -> int:
    _, events = live.events_after(0)  # type: ignore[attr-defined]
    return sum(e.kind is EventKind.ARRIVED for e in events)


def test_a_recognition_is_acknowledged_only_once_its_vote_is_saved(
    outage: Outage, mqtt_url: str, facility: Facility
) -> None:
    """A read that cannot be saved is not acknowledged (the broker keeps it); once saved, it counts
    across a restart: one read before and one after settle the number."""
    topic = str(Topic(TopicKind.RECOGNITION, facility.site, "edge-bay1", flow="prod", camera="T1-C2"))
    first, second = (factories.recognition(captured_at=datetime.now(UTC)) for _ in range(2))
    for read, away in ((first, True), (first, False), (second, False)):  # the first delivered twice
        service = _service(outage.url, mqtt_url, facility)
        acked = threading.Event()
        try:
            if away:
                outage.begin()
            try:
                service.ingest.handle(topic, encode(read), acked.set)
                assert acked.wait(3) is not away, "acknowledged while its vote could not be saved"
            finally:
                outage.end()
            assert acked.wait(15)
        finally:
            service.ingest.stop()
            service.engine.dispose()
    with Session(service.engine) as session:
        row = session.get(IdentityRow, "L00001")
        votes = session.exec(
            select(func.count()).select_from(VoteRow).where(VoteRow.loco_id == "L00001")
        ).one()
    assert row is not None and row.plate == first.plate and row.series == first.series
    assert votes == 2  # the first read, delivered again after it was saved, counted once


def _service(url: str, mqtt_url: str, facility: Facility) -> CloudService:
    """The service as it is after a restart, its writer running (nothing else is needed here)."""
    config = CloudConfig(
        layout=EXAMPLE_LAYOUT,
        database_url=url,
        broker=BrokerConfig(url=mqtt_url),
        ingest=IngestConfig(client_id=f"cloud-{uuid.uuid4().hex[:8]}"),
    )
    service = CloudService.open(config, facility)
    if not service.fse.locos():
        service.fse.restore([factories.loco("L00001", "T1", 14.0, 22.0)])
    service.ingest.start()
    return service


def test_a_layout_swap_never_shows_a_request_half_of_each_layout(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, tmp_path: Path
) -> None:
    layout = tmp_path / "facility.yaml"
    layout.write_text(EXAMPLE_LAYOUT.read_text())
    server = Server(database_factory(), mqtt_url, facility, layout=layout)
    viewer = create_key(server.service.engine, Role.VIEWER)
    full = facility.model_dump(mode="json")
    smaller = _without_track(full, "T4")
    swapping = threading.Event()

    def swap() -> None:
        for k in range(40):
            server.service.replace_layout(Facility.model_validate(smaller if k % 2 == 0 else full), by="test")
        swapping.set()

    thread = threading.Thread(target=swap)
    thread.start()
    statuses = set()
    try:
        while not swapping.is_set():
            for path in ("/api/state", "/api/tracks"):
                statuses.add(server.call(path, viewer)[0])
        assert statuses == {200}
    finally:
        thread.join()
        server.stop()


def _without_track(layout: dict[str, Any], track: str) -> dict[str, Any]:
    smaller = copy.deepcopy(layout)
    del smaller["tracks"][track]
    smaller["stations"] = {k: v for k, v in smaller["stations"].items() if v["track"] != track}
    smaller["cameras"] = {k: v for k, v in smaller["cameras"].items() if v["track"] != track}
    return smaller


def test_a_node_that_falls_silent_is_not_shown_online_for_good(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility
) -> None:
    """A birth with a higher bdSeq (a node's own, or a forgery) makes the real Will of the session
    before it count for nothing; the node is still not shown online once nothing is heard from it."""
    server = Server(database_factory(), mqtt_url, facility, ingest={"node_silence_s": 2.0})
    viewer = create_key(server.service.engine, Role.VIEWER)
    edge = Edge(mqtt_url, facility)
    state = str(Topic(TopicKind.NODE_STATE, facility.site, "edge-bay4"))
    status = str(Topic(TopicKind.NODE_STATUS, facility.site, "edge-bay4"))

    def bay4() -> dict[str, Any] | None:
        return next((n for n in server.call("/api/nodes", viewer)[1] if n["node_id"] == "edge-bay4"), None)

    try:
        now = datetime.now(UTC)
        edge.link.publish(state, encode(factories.node_birth(node_id="edge-bay4", bd_seq=9, at=now)))
        edge.link.publish(state, encode(factories.node_birth(node_id="edge-bay4", bd_seq=10, at=now)))
        edge.link.publish(
            state, encode(factories.node_birth(node_id="edge-bay4", bd_seq=9, state="offline", at=now))
        )
        wait_until(lambda: (n := bay4()) and n["state"] == "online", 5, "the node online")
        silent = wait_until(lambda: (n := bay4()) and n["state"] == "silent" and n, 15, "the node silent")
        assert "nothing heard since" in silent["reason"]
        edge.link.publish(status, encode(factories.node_status(node_id="edge-bay4", at=datetime.now(UTC))))
        wait_until(lambda: (n := bay4()) and n["state"] == "online", 5, "the node heard again")
    finally:
        edge.stop()
        server.stop()


def test_a_request_that_cannot_answer_in_time_gets_a_503() -> None:
    """The 503 comes while the request is still waiting (it waits for the test to let it go, so no
    clock is read: on a loaded machine the deadline may fire late, but it fires before the answer);
    the request then ends in the background and the server goes on."""
    release, finished = threading.Event(), threading.Event()
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        while not release.is_set():
            await asyncio.sleep(0.01)
        finished.set()
        return {"late": "yes"}

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        return {"fast": "yes"}

    app.add_middleware(Deadline, seconds=0.5)
    port = free_port()
    server = make_server(app, "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the server")
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=30)
        assert failed.value.code == 503 and b"no answer within" in failed.value.read()
        assert not finished.is_set(), "answered by the request itself, not by the deadline"
        release.set()
        wait_until(finished.is_set, 10, "the request to end in the background")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fast", timeout=10) as reply:
            assert reply.status == 200
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)
