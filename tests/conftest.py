"""Test harness: a real MQTT broker and a real database for every test that needs one.

Defaults need nothing installed: an embedded amqtt broker on a free port and a SQLite file. Set
DEPOTWATCH_TEST_MQTT_URL (mqtt://host:port) and DEPOTWATCH_TEST_DATABASE_URL (an SQLAlchemy URL,
e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run the same tests against Mosquitto and
PostgreSQL; each PostgreSQL session gets a fresh database that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.embedded_broker import EmbeddedBroker
from shared.layout import Facility, load_facility

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_LAYOUT = REPO / "examples" / "facility.yaml"
MQTT_ENV = "DEPOTWATCH_TEST_MQTT_URL"
DATABASE_ENV = "DEPOTWATCH_TEST_DATABASE_URL"


@pytest.fixture(scope="session")
def facility() -> Facility:
    """The shipped example depot."""
    return load_facility(EXAMPLE_LAYOUT)


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """URL of a running broker: the one named in the environment, else an embedded one."""
    external = os.environ.get(MQTT_ENV)
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.url


MqttFactory = Callable[..., mqtt.Client]


@pytest.fixture
def mqtt_client(mqtt_url: str) -> Iterator[MqttFactory]:
    """Makes connected paho clients (network loop running); disconnects them after the test."""
    clients: list[mqtt.Client] = []
    parts = urlsplit(mqtt_url)

    def make(client_id: str = "", **kwargs: object) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,
            **kwargs,  # type: ignore[arg-type]
        )
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        client.loop_start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an empty database for this test session: SQLite by default, PostgreSQL when configured."""
    external = os.environ.get(DATABASE_ENV)
    if not external:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'depotwatch.sqlite'}"
        return
    url = make_url(external)
    if not url.drivername.startswith("postgresql"):
        yield external
        return
    name = f"depotwatch_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
