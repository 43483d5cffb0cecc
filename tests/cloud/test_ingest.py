"""Cloud ingest over a real broker into a real database (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session, SQLModel, func, select

from cloud.db.engine import alembic_config, make_engine, upgrade
from cloud.db.models import DeadLetterRow, NodeRow, ObservationRow
from cloud.flows import one_estimator
from cloud.fse import FacilityStateEstimator
from cloud.ingest import Ingest
from shared.codec import encode
from shared.layout import Facility
from shared.messages import LocoExtent, NodeState
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
    ours = {m.__tablename__ for m in SQLModel.__subclasses__() if m.__module__ == "cloud.db.models"}

    def include(_object: object, name: str | None, kind: str, _reflected: bool, _other: object) -> bool:
        return kind != "table" or name in ours

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == [], differences


class Wired:
    """Ingest subscribed to the whole namespace through the shared MQTT adapter."""

    def __init__(
        self, engine: Engine, mqtt_url: str, facility: Facility, client_id: str | None = None
    ) -> None:
        self.fse = FacilityStateEstimator(facility)
        self.ingest = Ingest(engine, facility.site, one_estimator(self.fse))
        self.link = MqttConnection(
            BrokerConfig(url=mqtt_url),
            client_id or f"cloud-test-{uuid.uuid4().hex[:6]}",
            clean_session=client_id is None,
            on_idle=self.ingest.submit,
        )
        self.link.subscribe_acking("depotwatch/v1/#", self.ingest.handle)
        self.ingest.start()
        self.link.start()
        assert self.link.wait_connected(5) and self.link.wait_subscribed(5)

    def publish(self, topic: str, payload: bytes) -> None:
        assert self.link.publish(topic, payload) is not None

    def stop(self) -> None:
        self.link.stop(drain=lambda: self.ingest.flush(5))
        self.ingest.stop()


@pytest.fixture
def wired(engine: Engine, mqtt_url: str, facility: Facility) -> Iterator[Wired]:
    w = Wired(engine, mqtt_url, facility)
    yield w
    w.stop()


def _count(engine: Engine, node_id: str) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).where(ObservationRow.node_id == node_id)).one())


def test_detections_are_stored_once_and_fed_to_the_state(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    node = f"n{uuid.uuid4().hex[:8]}"
    topic = str(Topic(TopicKind.DETECTION, facility.site, node, flow="prod", camera="T1-C2"))
    sent = []
    for seq in range(20):
        extent = LocoExtent(
            start_m=14.0, end_m=22.0, start_beyond_view=False, end_beyond_view=False, confidence=0.9
        )
        d = factories.detection(
            node_id=node, seq=seq, extents=[extent], captured_at=factories.NOW + timedelta(seconds=seq)
        )
        sent.append(d)
        wired.publish(topic, encode(d))
    for d in sent[5:10]:  # redelivered after an outage: same node and sequence
        wired.publish(topic, encode(d.model_copy(update={"historical": True})))
    wait_until(
        lambda: _count(engine, node) == 20 and wired.ingest.counts.duplicates >= 5, 10, "20 stored rows"
    )
    assert wired.ingest.counts.duplicates == 5
    wired.fse.update(factories.NOW + timedelta(seconds=20))
    [loco] = [loco for loco in wired.fse.locos() if loco.track_id == "T1"]
    assert (loco.start_m, loco.end_m) == pytest.approx((14.0, 22.0), abs=0.11)


def test_detections_taken_but_not_committed_come_back_after_a_crash(
    engine: Engine, redelivering_mqtt_url: str, facility: Facility
) -> None:
    """The first cloud takes detections while its database is unreachable and dies before writing
    them; having acknowledged nothing, it loses nothing: the broker hands them to the next one."""
    node = f"n{uuid.uuid4().hex[:8]}"
    client_id = f"cloud-crash-{uuid.uuid4().hex[:6]}"
    topic = str(Topic(TopicKind.DETECTION, facility.site, node, flow="prod", camera="T1-C2"))
    unreachable = make_engine("postgresql+psycopg://depotwatch@127.0.0.1:9/none?connect_timeout=1")
    first = Wired(unreachable, redelivering_mqtt_url, facility, client_id=client_id)
    for seq in range(10):
        first.publish(topic, encode(factories.detection(node_id=node, seq=seq)))
    wait_until(lambda: first.ingest.counts.write_failures >= 1, 10, "a failed write")
    taken = first.ingest.counts.received
    assert taken >= 1
    first.link.stop()  # dies: no drain, nothing acknowledged
    first.ingest.stop(timeout=0.5)
    assert first.ingest.counts.stored == 0

    second = Wired(engine, redelivering_mqtt_url, facility, client_id=client_id)
    try:
        wait_until(lambda: _count(engine, node) == 10, 15, "all ten detections stored")
        assert second.ingest.counts.received >= taken
    finally:
        second.stop()
        unreachable.dispose()


@pytest.mark.parametrize(
    ("topic_of", "payload", "reason"),
    [
        (
            lambda site, node: f"depotwatch/v1/{site}/flow/prod/det/{node}/T1-C2",
            b"{broken",
            "invalid Detection",
        ),
        (lambda site, node: f"depotwatch/v1/{site}/flow/prod/det/{node}-x/T1-C2", None, "does not match"),
        (lambda site, node: f"depotwatch/v1/{site}/node/{node}/what", b"{}", "matches no depotwatch topic"),
        (lambda site, node: f"depotwatch/v1/elsewhere/flow/prod/det/{node}/T1-C2", None, "not this facility"),
        (lambda site, node: f"depotwatch/v1/{site}/flow/prod/det/{node}/T1-C2", b"x" * 70_000, "exceed"),
    ],
)
def test_bad_messages_become_dead_letters_and_handling_goes_on(
    engine: Engine, wired: Wired, facility: Facility, topic_of: object, payload: bytes | None, reason: str
) -> None:
    node = f"n{uuid.uuid4().hex[:8]}"
    topic = topic_of(facility.site, node)  # type: ignore[operator]
    body = payload if payload is not None else encode(factories.detection(node_id=node))
    wired.publish(topic, body)
    good = factories.detection(node_id=node, seq=1)
    wired.publish(
        str(Topic(TopicKind.DETECTION, facility.site, node, flow="prod", camera="T1-C2")), encode(good)
    )
    wait_until(lambda: _count(engine, node) == 1, 10, "the good detection after the bad one")
    with Session(engine) as session:
        letters = session.exec(select(DeadLetterRow).where(DeadLetterRow.topic == topic)).all()
    assert letters and reason in letters[-1].reason


def test_a_late_will_does_not_mark_a_reconnected_node_offline(
    engine: Engine, wired: Wired, facility: Facility
) -> None:
    node = f"n{uuid.uuid4().hex[:8]}"
    topic = str(Topic(TopicKind.NODE_STATE, facility.site, node))

    def state() -> tuple[str, int] | None:
        with Session(engine) as session:
            row = session.get(NodeRow, node)
            return (row.state, row.bd_seq) if row else None

    wired.publish(topic, encode(factories.node_birth(node_id=node, bd_seq=4)))
    wait_until(lambda: state() == ("online", 4), 5, "the birth")
    wired.publish(topic, encode(factories.node_birth(node_id=node, bd_seq=3, state=NodeState.OFFLINE)))
    wired.publish(
        str(Topic(TopicKind.NODE_STATUS, facility.site, node)),
        encode(factories.node_status(node_id=node, spool_depth=7)),
    )
    wait_until(lambda: _spool(engine, node) == 7, 5, "the status after the late will")
    assert state() == ("online", 4)
    wired.publish(topic, encode(factories.node_birth(node_id=node, bd_seq=4, state=NodeState.OFFLINE)))
    wait_until(lambda: state() == ("offline", 4), 5, "the matching death")


def _spool(engine: Engine, node: str) -> int | None:
    with Session(engine) as session:
        row = session.get(NodeRow, node)
        return row.spool_depth if row else None
