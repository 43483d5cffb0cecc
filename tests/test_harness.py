"""The harness itself: its broker and database are real and usable."""

from __future__ import annotations

import queue

from sqlalchemy import create_engine
from sqlmodel import Field, Session, SQLModel, select

from tests.conftest import MqttFactory


class _Probe(SQLModel, table=True):
    __tablename__ = "harness_probe"
    id: int | None = Field(default=None, primary_key=True)
    note: str


def test_database_round_trips_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    SQLModel.metadata.create_all(engine, tables=[_Probe.__table__])  # type: ignore[list-item]
    try:
        with Session(engine) as session:
            session.add(_Probe(note="locomotive"))
            session.commit()
        with Session(engine) as session:
            assert [p.note for p in session.exec(select(_Probe))] == ["locomotive"]
    finally:
        SQLModel.metadata.drop_all(engine, tables=[_Probe.__table__])  # type: ignore[list-item]
        engine.dispose()


def test_broker_keeps_retained_messages(mqtt_client: MqttFactory) -> None:
    publisher = mqtt_client()
    publisher.publish("depotwatch-test/harness/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
    got: queue.Queue[bytes] = queue.Queue()
    late = mqtt_client()
    # amqtt 0.12 also hands a connecting client the retained messages of *other* sessions' filters
    # (it loops over every subscription in the broker on connect): keep only what this test asked for.
    late.on_message = lambda _c, _u, msg: (
        msg.topic == "depotwatch-test/harness/retained" and got.put(msg.payload)
    )
    late.subscribe("depotwatch-test/harness/retained", qos=1)
    assert got.get(timeout=5) == b"kept"
    publisher.publish("depotwatch-test/harness/retained", b"", qos=1, retain=True).wait_for_publish(5)
