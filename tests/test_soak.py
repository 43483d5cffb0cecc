"""Soak: the whole cloud service (ingest, estimators, writers, HTTP) under valid traffic mixed with
poison, forged lifecycle, commands, duplicates and one database outage, for `--soak-s` seconds.

The broker is a private Mosquitto with the stock in-flight window (20 per client) and the shipped
queue settings (nothing dropped for a session that is away). Afterwards every valid detection is
stored, the live state is the one the valid traffic describes, nothing is left unacknowledged, no
message made the ingest fail, and the service is healthy."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from cloud.auth import Role, create_key
from cloud.db.models import DeadLetterRow, ObservationRow
from shared.codec import encode
from shared.layout import Facility
from shared.messages import Detection, NodeState
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.brokers import PrivateMosquitto
from tests.cloud.servers import Server
from tests.cloud.test_reliability import OUTAGES, Outage, outage  # noqa: F401 - `outage` is a fixture
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

# What stands where, as the valid traffic tells it: camera → extents it sees (track metres).
SCENE: dict[str, list[tuple[float, float]]] = {
    "T1-C1": [(14.0, 15.3)],
    "T1-C2": [(14.0, 22.0)],
    "T1-C3": [],
    "T2-C2": [],
    "T2-C3": [(28.0, 36.0)],
    "T2-C4": [],
    "T3-C2": [],
    "T4-C3": [],
}
EXPECTED = {"T1": [(14.0, 22.0)], "T2": [(28.0, 36.0)], "T3": [], "T4": []}
RATE_HZ = 4.0
# The database outage: longer than SQLite's 5 s wait for a lock, so writes do fail meanwhile.
OUTAGE_S = 8.0


@pytest.fixture
def soak_broker(tmp_path: Path) -> Iterator[str]:
    broker = PrivateMosquitto(tmp_path, "max_queued_messages 0\nmax_queued_bytes 1073741824\n").start()
    yield broker.url
    broker.stop()


class Traffic:
    """Every publisher of the soak, each on a thread of its own, each stopped by `stop`."""

    def __init__(self, url: str, facility: Facility) -> None:
        self.facility = facility
        self.link = MqttConnection(BrokerConfig(url=url), f"soak-{uuid.uuid4().hex[:6]}")
        self.link.start()
        assert self.link.wait_connected(5)
        self.seqs = itertools.count(int(time.time() * 1000) * 1000)
        self.valid: list[Detection] = []
        self.poison = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._loop, args=(fn, period), daemon=True)
            for fn, period in (
                (self._cameras, 1 / RATE_HZ),
                (self._nodes, 2.0),
                (self._poison, 0.1),
                (self._lifecycle_forgeries, 0.5),
                (self._commands, 0.2),
                (self._duplicates, 0.5),
            )
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        """Stop the noise; then three more rounds of valid views, so the state is judged on fresh ones."""
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.stop.clear()
        for _ in range(3):
            self._cameras()
            time.sleep(1 / RATE_HZ)
        wait_until(lambda: self.link.in_flight == 0, 30, "the broker to take everything published")
        self.link.stop()

    def _loop(self, fn: Any, period: float) -> None:
        while not self.stop.wait(period):
            fn()

    def _send(self, topic: Topic | str, payload: bytes) -> None:
        while self.link.publish(str(topic), payload) is None and not self.stop.is_set():
            time.sleep(0.05)

    def _detection(self, camera: str, extents: list[tuple[float, float]], **changes: Any) -> Detection:
        d = factories.detection_for(
            self.facility,
            camera,
            seq=next(self.seqs),
            captured_at=datetime.now(UTC),
            extents=[factories.extent(a, b) for a, b in extents],
        )
        return d.model_copy(update=changes) if changes else d

    def _topic(self, d: Detection) -> Topic:
        return Topic(TopicKind.DETECTION, self.facility.site, d.node_id, d.flow, d.camera_id)

    def _cameras(self) -> None:
        for camera, extents in SCENE.items():
            d = self._detection(camera, extents)
            with self._lock:
                self.valid.append(d)
            self._send(self._topic(d), encode(d))

    def _nodes(self) -> None:
        now = datetime.now(UTC)
        for node in ("edge-bay1", "edge-bay2", "edge-bay3", "edge-bay4"):
            self._send(
                Topic(TopicKind.NODE_STATUS, self.facility.site, node),
                encode(factories.node_status(node_id=node, at=now)),
            )

    def _poison(self) -> None:
        site = self.facility.site
        good = self._detection("T3-C2", [])
        topic = str(self._topic(good))

        def changed(**fields: Any) -> bytes:
            document = json.loads(encode(good))
            for key, value in fields.items():
                if value is None:
                    del document[key]
                else:
                    document[key] = value
            return json.dumps(document, allow_nan=True).encode()

        view = {"start_m": float("nan"), "end_m": 27.1}
        cases: list[tuple[str, bytes]] = [
            (topic, changed(seq=2**63)),
            (topic, changed(seq="1234")),
            (topic, changed(view=view)),
            (topic, changed(captured_at="0001-01-01T00:00:00+14:00")),
            (topic, changed(captured_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())),
            (topic, changed(schema_version=None)),
            (topic, b"{broken"),
            # Another node's camera, a camera of nobody's, a view the camera cannot have.
            (
                str(Topic(TopicKind.DETECTION, site, "edge-bay2", "prod", "T3-C2")),
                changed(node_id="edge-bay2"),
            ),
            (str(Topic(TopicKind.DETECTION, site, "edge-bay3", "prod", "T9-C9")), changed(camera_id="T9-C9")),
            (topic, changed(view={"start_m": 60.0, "end_m": 70.0})),
            (
                str(Topic(TopicKind.THUMBNAIL, site, "edge-bay1", "prod", "T1-C2")),
                encode(factories.thumbnail()).replace(
                    factories.jpeg_bytes(), factories.jpeg_declaring(30000, 30000)
                ),
            ),
        ]
        for case_topic, payload in cases:
            self.poison += 1
            self._send(case_topic, payload)

    def _lifecycle_forgeries(self) -> None:
        site, now = self.facility.site, datetime.now(UTC)
        ghost = factories.node_birth(node_id="edge-ghost", at=now)
        self._send(Topic(TopicKind.NODE_STATE, site, "edge-ghost"), encode(ghost))
        future = factories.camera_status(camera_id="T1-C2", at=now + timedelta(days=3))
        self._send(Topic(TopicKind.CAMERA_STATUS, site, "edge-bay1", camera="T1-C2"), encode(future))
        other = factories.camera_status(node_id="edge-bay2", camera_id="T1-C2", at=now)
        self._send(Topic(TopicKind.CAMERA_STATUS, site, "edge-bay2", camera="T1-C2"), encode(other))
        late_will = factories.node_birth(node_id="edge-bay3", bd_seq=1, state=NodeState.OFFLINE, at=now)
        self._send(Topic(TopicKind.NODE_STATE, site, "edge-bay3"), encode(late_will))

    def _commands(self) -> None:
        site = self.facility.site
        self._send(
            Topic(TopicKind.COMMAND, site, "edge-bay1"),
            encode(factories.command(issued_at=datetime.now(UTC))),
        )
        self._send(
            Topic(TopicKind.COMMAND_ACK, site, "edge-bay1"),
            encode(factories.command_ack(at=datetime.now(UTC))),
        )

    def _duplicates(self) -> None:
        with self._lock:
            recent = self.valid[-5:]
        for d in recent:
            self._send(self._topic(d), encode(d.model_copy(update={"historical": True})))
            if d.extents:  # the same number, other content: must not become a second truth
                other = d.model_copy(update={"observation_id": uuid.uuid4(), "extents": []})
                self._send(self._topic(other), encode(other))


@pytest.mark.parametrize("outage", OUTAGES[:1], indirect=True)  # one kind is enough here
def test_valid_traffic_survives_poison_forgeries_commands_and_a_database_outage(
    request: pytest.FixtureRequest,
    soak_broker: str,
    outage: Outage,  # noqa: F811 - the fixture imported above
    facility: Facility,
) -> None:
    soak_s = float(request.config.getoption("--soak-s"))
    assert soak_s >= 3 * OUTAGE_S, f"--soak-s must be at least {3 * OUTAGE_S:g}: an outage and time around it"
    server = Server(outage.url, soak_broker, facility, health={"stall_s": 5.0})
    viewer = create_key(server.service.engine, Role.VIEWER)
    traffic = Traffic(soak_broker, facility)
    service = server.service
    try:
        traffic.start()
        time.sleep(soak_s / 3)
        outage.begin()
        time.sleep(OUTAGE_S)
        outage.end()
        time.sleep(soak_s - soak_s / 3 - OUTAGE_S)
        traffic.finish()
        wait_until(
            lambda: service.ingest.pending == 0 and service.link.unacknowledged == 0,
            60,
            "the ingest to catch up",
        )
        wanted = {str(d.observation_id) for d in traffic.valid}
        with Session(service.engine) as session:
            stored = set(
                session.exec(
                    select(ObservationRow.observation_id).where(
                        col(ObservationRow.observation_id).in_(list(wanted))
                    )
                ).all()
            )
            letters = session.exec(select(func.count()).select_from(DeadLetterRow)).one()
        assert stored == wanted, f"{len(wanted - stored)} of {len(wanted)} valid detections not stored"
        assert service.ingest.counts.handler_errors == 0
        assert letters >= traffic.poison
        assert service.ingest.counts.write_failures >= 1  # the outage did stop the writes for a while
        # The live state is what the valid traffic describes.
        wait_until(lambda: _state_is(server, viewer), 10, "the live state the valid traffic describes")
        wait_until(lambda: server.call("/healthz")[0] == 200, 15, "health")
    finally:
        traffic.stop.set()
        server.stop()


def _state_is(server: Server, key: str) -> bool:
    status, state = server.call("/api/state", key)
    if status != 200:
        return False
    seen = {t["track_id"]: [(loco["start_m"], loco["end_m"]) for loco in t["locos"]] for t in state["tracks"]}
    for track, expected in EXPECTED.items():
        if len(seen[track]) != len(expected):
            return False
        for (a, b), (start, end) in zip(expected, seen[track], strict=True):
            if abs(a - start) > 0.3 or abs(b - end) > 0.3:
                return False
    return True
