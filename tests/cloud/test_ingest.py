"""Cloud ingest over a real broker into a real database (SQLite, or PostgreSQL when configured): every
message handled and acknowledged, bad ones dead-lettered with the reason, detections believed only as
far as the layout lets their camera see, stored once and fused once."""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel, col, select

import cloud.ingest as ingest_module
from cloud.db.engine import alembic_config, make_engine, upgrade
from cloud.db.models import CameraRow, DeadLetterRow, NodeRow, ObservationRow
from cloud.flows import one_estimator
from cloud.fse import FacilityStateEstimator
from cloud.ingest import Ingest, subscriptions
from shared.codec import encode
from shared.layout import Facility
from shared.messages import Detection, NodeState, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_migrations_bring_an_empty_database_to_the_newest_schema(engine: Engine, database_url: str) -> None:
    tables = set(inspect(engine).get_table_names())
    assert {"observations", "dead_letters", "nodes", "cameras", "locomotives", "events", "api_keys"} <= tables
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    upgrade(database_url)  # a second run changes nothing


def test_the_migrated_schema_is_the_one_the_models_describe(engine: Engine) -> None:
    # Only the service's tables: other tests may add their own to SQLModel's shared metadata.
    # Table models may derive from shared bases (cloud.locomotive.LocoBase), so walk the whole tree.
    ours: set[str] = set()
    todo = list(SQLModel.__subclasses__())
    while todo:
        model = todo.pop()
        todo.extend(model.__subclasses__())
        if model.__module__ == "cloud.db.models" and hasattr(model, "__table__"):
            ours.add(str(model.__tablename__))
    assert {"locomotives", "observations", "events"} <= ours

    def include(_object: object, name: str | None, kind: str, _reflected: bool, _other: object) -> bool:
        return kind != "table" or name in ours

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == [], differences


class Wired:
    """Ingest subscribed to what the cloud consumes, through the shared MQTT adapter."""

    def __init__(
        self, engine: Engine, mqtt_url: str, facility: Facility, client_id: str | None = None
    ) -> None:
        self.facility = facility
        self.published = 0
        self.fse = FacilityStateEstimator(facility)
        self.ingest = Ingest(engine, facility, one_estimator(self.fse))
        self.link = MqttConnection(
            BrokerConfig(url=mqtt_url),
            client_id or f"cloud-test-{uuid.uuid4().hex[:6]}",
            clean_session=client_id is None,
        )
        for topic_filter in subscriptions(facility.site):
            self.link.subscribe_acking(topic_filter, self.ingest.handle)
        self.ingest.start()
        self.link.start()
        assert self.link.wait_connected(5) and self.link.wait_subscribed(5)

    def publish(self, topic: Topic | str, payload: bytes) -> None:
        assert self.link.publish(str(topic), payload) is not None
        self.published += 1

    def detect(self, d: Detection) -> None:
        self.publish(
            Topic(TopicKind.DETECTION, self.facility.site, d.node_id, d.flow, d.camera_id), encode(d)
        )

    def settled(self) -> bool:
        """Everything published here came back, is written and acknowledged."""
        received = self.ingest.counts.received >= self.published
        return received and self.ingest.pending == 0 and self.link.unacknowledged == 0

    def stop(self) -> None:
        self.link.stop(drain=lambda: self.ingest.flush(5))
        self.ingest.stop()


@pytest.fixture
def wired(engine: Engine, mqtt_url: str, facility: Facility) -> Iterator[Wired]:
    w = Wired(engine, mqtt_url, facility)
    yield w
    w.stop()


def _seqs() -> int:
    """A run of sequence numbers no other test of the session uses (they share the database)."""
    return random.randrange(2**40) * 1000


def _stored(engine: Engine, node: str, first: int, last: int) -> list[ObservationRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(ObservationRow).where(
                    ObservationRow.node_id == node, col(ObservationRow.seq).between(first, last)
                )
            ).all()
        )


def _letters(engine: Engine, topic: Topic | str, since: datetime) -> list[DeadLetterRow]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(DeadLetterRow)
                .where(DeadLetterRow.topic == str(topic), col(DeadLetterRow.received_at) >= since)
                .order_by(col(DeadLetterRow.id))
            ).all()
        )


def test_detections_are_stored_once_and_fed_to_the_state(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    base = _seqs()
    sent = [
        factories.detection_for(
            facility,
            "T1-C2",
            seq=base + k,
            extents=[factories.extent(14.0, 22.0)],
            captured_at=factories.NOW + timedelta(seconds=k),
        )
        for k in range(20)
    ]
    for d in sent:
        wired.detect(d)
    for d in sent[5:10]:  # redelivered after an outage: same node and sequence
        wired.detect(d.model_copy(update={"historical": True}))
    wait_until(
        lambda: len(_stored(engine, "edge-bay1", base, base + 19)) == 20 and wired.settled(), 10, "20 rows"
    )
    assert wired.ingest.counts.duplicates == 5
    assert wired.ingest.counts.redelivered == 5
    wired.fse.update(factories.NOW + timedelta(seconds=20))
    [loco] = [loco for loco in wired.fse.locos() if loco.track_id == "T1"]
    assert (loco.start_m, loco.end_m) == pytest.approx((14.0, 22.0), abs=0.11)


def test_a_detection_delivered_again_even_after_a_restart_is_one_row_and_no_dead_letter(
    engine: Engine, mqtt_url: str, facility: Facility
) -> None:
    """QoS 1 is at least once: the same detection delivered twice, then once more to an ingest started
    afresh (which remembers no numbers: only the database's unique key can tell), is stored once, and
    the deliveries again are dropped as duplicates, never refused into dead letters."""
    since = datetime.now(UTC)
    base = _seqs()
    d = factories.detection_for(facility, "T1-C2", seq=base, extents=[factories.extent(14.0, 22.0)])
    topic = Topic(TopicKind.DETECTION, facility.site, d.node_id, d.flow, d.camera_id)
    seen: list[tuple[int, int, int, int]] = []
    for deliveries in (2, 1):  # the second round is a new ingest on the same database
        w = Wired(engine, mqtt_url, facility)
        try:
            for _ in range(deliveries):
                w.detect(d)
            wait_until(w.settled, 10, f"{deliveries} deliveries written and acknowledged")
            counts = w.ingest.counts
            seen.append((counts.stored, counts.duplicates, counts.refused, counts.dead_letters))
        finally:
            w.stop()
    assert [row.observation_id for row in _stored(engine, d.node_id, base, base)] == [str(d.observation_id)]
    assert [letter.reason for letter in _letters(engine, topic, since)] == []
    assert seen == [(1, 1, 0, 0), (0, 1, 0, 0)], "(stored, duplicates, refused, dead letters) per ingest"


def test_detections_taken_but_not_committed_come_back_after_a_crash(
    engine: Engine, redelivering_mqtt_url: str, facility: Facility
) -> None:
    """The first cloud takes detections while its database is unreachable and dies before writing
    them; having acknowledged nothing, it loses nothing: the broker hands them to the next one."""
    base = _seqs()
    client_id = f"cloud-crash-{uuid.uuid4().hex[:6]}"
    unreachable = make_engine("postgresql+psycopg://depotwatch@127.0.0.1:9/none?connect_timeout=1")
    first = Wired(unreachable, redelivering_mqtt_url, facility, client_id=client_id)
    for k in range(10):
        first.detect(factories.detection_for(facility, "T1-C2", seq=base + k))
    wait_until(lambda: first.ingest.counts.write_failures >= 1, 10, "a failed write")
    taken = first.ingest.counts.received
    assert taken >= 1
    first.link.stop()  # dies: no drain, nothing acknowledged
    first.ingest.stop(timeout=0.5)
    assert first.ingest.counts.stored == 0

    second = Wired(engine, redelivering_mqtt_url, facility, client_id=client_id)
    try:
        wait_until(lambda: len(_stored(engine, "edge-bay1", base, base + 9)) == 10, 15, "all ten stored")
        assert second.ingest.counts.received >= taken
    finally:
        second.stop()
        unreachable.dispose()


@pytest.mark.parametrize(
    ("topic_of", "payload", "reason"),
    [
        (lambda site: f"depotwatch/v1/{site}/flow/prod/det/edge-bay1/T1-C2", b"{broken", "invalid Detection"),
        (lambda site: f"depotwatch/v1/{site}/flow/prod/det/edge-bay2/T1-C2", None, "does not match"),
        (lambda site: f"depotwatch/v1/{site}/flow/prod/det/edge-bay1/T1-C2", b"x" * 70_000, "exceed"),
    ],
)
def test_bad_messages_become_dead_letters_and_handling_goes_on(
    engine: Engine, wired: Wired, facility: Facility, topic_of: object, payload: bytes | None, reason: str
) -> None:
    since = datetime.now(UTC)
    base = _seqs()
    topic = topic_of(facility.site)  # type: ignore[operator]
    wired.publish(
        topic, payload if payload is not None else encode(factories.detection_for(facility, "T1-C2"))
    )
    wired.detect(factories.detection_for(facility, "T1-C2", seq=base))
    wait_until(lambda: _stored(engine, "edge-bay1", base, base), 10, "the good detection after the bad one")
    wait_until(wired.settled, 5, "everything acknowledged")
    [letter] = _letters(engine, topic, since)
    assert reason in letter.reason
    assert letter.payload == (payload if payload is not None else letter.payload)[:65536]


def test_commands_and_their_acks_never_fill_the_brokers_in_flight_window(
    engine: Engine, stock_mosquitto_url: str, facility: Facility
) -> None:
    """On a stock Mosquitto (20 messages in flight per client), commands to the nodes and the nodes'
    answers once stopped the cloud for good: neither was ever acknowledged. Now the cloud does not
    subscribe to commands and acknowledges every answer, so detections still arrive after 60 of each,
    and a restart on the same session is not blocked either."""
    client_id = f"cloud-cmd-{uuid.uuid4().hex[:6]}"
    site = facility.site
    base = _seqs()
    for seq in (base, base + 1):
        w = Wired(engine, stock_mosquitto_url, facility, client_id=client_id)
        try:
            for _ in range(60):
                w.publish(Topic(TopicKind.COMMAND, site, "edge-bay1"), encode(factories.command()))
                w.publish(Topic(TopicKind.COMMAND_ACK, site, "edge-bay1"), encode(factories.command_ack()))
            w.detect(factories.detection_for(facility, "T1-C2", seq=seq))
            wait_until(
                functools.partial(_stored, engine, "edge-bay1", seq, seq), 10, "the detection after them"
            )
            counts = w.ingest.counts
            wait_until(lambda: counts.command_acks == 60, 10, "every answer handled")  # noqa: B023
            assert counts.received == 61 and w.ingest.pending == 0 and w.link.unacknowledged == 0
        finally:
            w.stop()


def test_every_message_is_acknowledged_even_when_the_ingest_fails_on_it(
    engine: Engine, stock_mosquitto_url: str, facility: Facility, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the ingest costs the one message (a dead letter with the error), never the window."""
    w = Wired(engine, stock_mosquitto_url, facility)
    try:
        since = datetime.now(UTC)
        real = w.ingest._admitted_write

        def broken(*args: object) -> object:
            raise RuntimeError("a bug")

        monkeypatch.setattr(w.ingest, "_admitted_write", broken)
        topic = Topic(TopicKind.NODE_STATUS, facility.site, "edge-bay1")
        for _ in range(30):
            w.publish(topic, encode(factories.node_status(at=datetime.now(UTC))))
        wait_until(lambda: len(_letters(engine, topic, since)) == 30, 10, "30 dead letters")
        assert "a bug" in _letters(engine, topic, since)[0].reason
        monkeypatch.setattr(w.ingest, "_admitted_write", real)
        base = _seqs()
        w.detect(factories.detection_for(facility, "T1-C2", seq=base))
        wait_until(lambda: _stored(engine, "edge-bay1", base, base), 10, "a detection after them")
        wait_until(w.settled, 5, "everything acknowledged")
    finally:
        w.stop()


@pytest.mark.parametrize(
    ("camera", "overrides", "reason"),
    [
        ("T1-C2", {"node_id": "edge-bay2"}, "belongs to node edge-bay1"),
        ("T1-C2", {"track_id": "T3"}, "watches track T1"),
        ("T1-C2", {"camera_id": "T9-C9"}, "not in the layout"),
        (
            "T1-C2",
            {"view": TrackSpan(start_m=60.0, end_m=500.0), "extents": [factories.extent(60.0, 500.0)]},
            "misses camera T1-C2",
        ),
        ("T1-C2", {"captured_at": datetime.now(UTC) + timedelta(hours=1)}, "ahead of this clock"),
    ],
)
def test_a_detection_the_layout_does_not_allow_is_a_dead_letter_and_not_fused(
    engine: Engine, wired: Wired, facility: Facility, camera: str, overrides: dict[str, object], reason: str
) -> None:
    since = datetime.now(UTC)
    base = _seqs()
    bad = factories.detection_for(facility, camera, seq=base, extents=[factories.extent(14.0, 22.0)])
    bad = bad.model_copy(update=overrides)
    topic = Topic(TopicKind.DETECTION, facility.site, bad.node_id, "prod", bad.camera_id)
    wired.publish(topic, encode(bad))
    wait_until(lambda: _letters(engine, topic, since), 10, "the dead letter")
    assert reason in _letters(engine, topic, since)[0].reason
    assert not _stored(engine, bad.node_id, base, base)
    wired.fse.update(bad.captured_at)
    assert wired.fse.locos() == []


def test_a_detection_is_believed_only_about_what_its_camera_sees(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    """T1-C2 sees 13.4-27.3 m; a report of the whole track is clipped to that, stored and fused so."""
    base = _seqs()
    whole = factories.detection_for(
        facility,
        "T1-C2",
        seq=base,
        view=TrackSpan(start_m=0.0, end_m=70.0),
        extents=[factories.extent(0.0, 70.0)],
        captured_at=datetime.now(UTC),
    )
    wired.detect(whole)
    [row] = wait_until(lambda: _stored(engine, "edge-bay1", base, base), 10, "the clipped detection")
    view = facility.cameras["T1-C2"].view
    assert (row.view_start_m, row.view_end_m) == (view.start_m, view.end_m)
    [extent] = row.extents
    assert (extent["start_m"], extent["end_m"]) == (view.start_m, view.end_m)
    assert extent["start_beyond_view"] and extent["end_beyond_view"]
    wired.fse.update(whole.captured_at)
    [loco] = wired.fse.locos()
    assert view.start_m - 0.1 <= loco.start_m and loco.end_m <= view.end_m + 0.1


def test_a_number_used_again_for_other_content_is_a_dead_letter_not_a_second_truth(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    since = datetime.now(UTC)
    base = _seqs()
    at = datetime.now(UTC)
    first = factories.detection_for(
        facility, "T1-C2", seq=base, captured_at=at, extents=[factories.extent(14, 20)]
    )
    other = factories.detection_for(
        facility, "T1-C2", seq=base, captured_at=at + timedelta(seconds=1), extents=[factories.extent(20, 27)]
    )
    wired.detect(first)
    wired.detect(other)
    topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", "prod", "T1-C2")
    wait_until(lambda: _letters(engine, topic, since), 10, "the conflicting detection's dead letter")
    assert "already carried observation" in _letters(engine, topic, since)[0].reason
    [row] = _stored(engine, "edge-bay1", base, base)
    assert row.observation_id == str(first.observation_id)
    wired.fse.update(at + timedelta(seconds=2))
    [loco] = wired.fse.locos()  # the live state has what the database has: the first
    assert (loco.start_m, loco.end_m) == pytest.approx((14.0, 20.0), abs=0.11)


def _node(engine: Engine, node: str) -> NodeRow | None:
    with Session(engine) as session:
        return session.get(NodeRow, node)


def test_lifecycle_cannot_be_replayed_or_forged_from_outside_the_layout(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    site, node = facility.site, "edge-bay3"
    since = datetime.now(UTC)
    now = datetime.now(UTC)
    state = Topic(TopicKind.NODE_STATE, site, node)
    wired.publish(state, encode(factories.node_birth(node_id=node, bd_seq=7, at=now)))
    wait_until(lambda: (row := _node(engine, node)) and row.bd_seq == 7, 5, "the birth")
    # Replayed: an older birth with a lower bdSeq changes nothing.
    wired.publish(state, encode(factories.node_birth(node_id=node, bd_seq=6, at=now - timedelta(hours=1))))
    # From the future beyond the skew: refused.
    wired.publish(state, encode(factories.node_birth(node_id=node, bd_seq=99, at=now + timedelta(days=1))))
    # A late Will of an earlier session does not end this one.
    wired.publish(
        state, encode(factories.node_birth(node_id=node, bd_seq=6, state=NodeState.OFFLINE, at=now))
    )
    # Nodes outside the layout create nothing.
    ghost = Topic(TopicKind.NODE_STATE, site, "edge-ghost")
    wired.publish(ghost, encode(factories.node_birth(node_id="edge-ghost", at=now)))
    ghost_status = Topic(TopicKind.NODE_STATUS, site, "edge-ghost")
    wired.publish(ghost_status, encode(factories.node_status(node_id="edge-ghost", at=now)))
    wait_until(wired.settled, 5, "all handled")
    row = _node(engine, node)
    assert row is not None and (row.state, row.bd_seq) == ("online", 7)
    assert _node(engine, "edge-ghost") is None
    assert "ahead of this clock" in _letters(engine, state, since)[0].reason
    assert "not in the layout" in _letters(engine, ghost, since)[0].reason
    assert "not in the layout" in _letters(engine, ghost_status, since)[0].reason
    wired.publish(
        state, encode(factories.node_birth(node_id=node, bd_seq=7, state=NodeState.OFFLINE, at=now))
    )
    wait_until(lambda: (row := _node(engine, node)) and row.state == "offline", 5, "the matching death")


def test_a_node_cannot_speak_for_another_nodes_camera_nor_from_the_future(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    site = facility.site
    since = datetime.now(UTC)
    mine = Topic(TopicKind.CAMERA_STATUS, site, "edge-bay1", camera="T1-C3")
    now = datetime.now(UTC)
    with Session(engine) as session:  # written before times were bounded: it must not outrank anything
        session.merge(
            CameraRow(
                camera_id="T1-C3", node_id="edge-bay1", state="online", at=datetime(2999, 1, 1, tzinfo=UTC)
            )
        )
        session.commit()
    wired.publish(mine, encode(factories.camera_status(camera_id="T1-C3", at=now, reason="first")))
    wait_until(lambda: (row := _camera(engine, "T1-C3")) and row.reason == "first", 5, "the camera's status")
    forged = Topic(TopicKind.CAMERA_STATUS, site, "edge-bay2", camera="T1-C3")
    wired.publish(forged, encode(factories.camera_status(node_id="edge-bay2", camera_id="T1-C3", at=now)))
    ahead = factories.camera_status(camera_id="T1-C3", at=now + timedelta(days=1))
    wired.publish(mine, encode(ahead))
    far = factories.camera_status(camera_id="T1-C3").model_copy(
        update={"at": datetime(2999, 1, 1, tzinfo=UTC)}
    )
    wired.publish(mine, encode(far))
    later = factories.camera_status(camera_id="T1-C3", at=now + timedelta(seconds=1), reason="later")
    wired.publish(mine, encode(later))
    wait_until(
        lambda: (row := _camera(engine, "T1-C3")) and row.reason == "later", 5, "the real later status"
    )
    row = _camera(engine, "T1-C3")
    assert row is not None and row.node_id == "edge-bay1"
    assert "belongs to node edge-bay1" in _letters(engine, forged, since)[0].reason
    reasons = [letter.reason for letter in _letters(engine, mine, since)]
    assert len(reasons) == 2 and "ahead of this clock" in reasons[0] and "less than 2100-01-01" in reasons[1]


def _camera(engine: Engine, camera: str) -> CameraRow | None:
    with Session(engine) as session:
        return session.get(CameraRow, camera)


def test_poison_in_the_database_is_a_dead_letter_and_the_rows_around_it_are_stored(
    engine: Engine, wired: Wired, facility: Facility, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row the database refuses (here a number it cannot hold, slipped past the contract) becomes a
    dead letter with the database's reason; the rows before and after it in the batch are stored."""
    base = _seqs()
    real_row = ingest_module._row

    def poisoned(d: Detection, received_at: datetime) -> dict[str, object]:
        row = real_row(d, received_at)
        if d.seq == base + 5:
            row["seq"] = 2**63  # past BIGINT: OverflowError (SQLite), NumericValueOutOfRange (COPY)
        return row

    monkeypatch.setattr(ingest_module, "_row", poisoned)
    since = datetime.now(UTC)
    for k in range(10):
        wired.detect(factories.detection_for(facility, "T1-C2", seq=base + k))
    topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", "prod", "T1-C2")
    wait_until(lambda: len(_stored(engine, "edge-bay1", base, base + 9)) == 9, 10, "the nine good rows")
    [letter] = wait_until(lambda: _letters(engine, topic, since), 5, "the poison's dead letter")
    assert "the database refused it" in letter.reason
    assert wired.ingest.writer.alive and wired.settled()
