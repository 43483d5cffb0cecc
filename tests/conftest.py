"""Test harness: a real MQTT broker and a real database for every test that needs one.

Defaults need nothing installed: an embedded amqtt broker on a free port and a SQLite file. Set
DEPOTWATCH_TEST_MQTT_URL (mqtt://host:port) and DEPOTWATCH_TEST_DATABASE_URL (an SQLAlchemy URL,
e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test) to run the same tests against Mosquitto and
PostgreSQL; each PostgreSQL session gets a fresh database that is dropped afterwards.

With DEPOTWATCH_TEST_SERVERS_ONLY=1 (CI's second pass) only the tests that reach those servers run: the
ones using the broker or database fixtures, and those marked `servers` (they read the variables
themselves). The others would only repeat, against the same code, what the first pass ran.
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

from depotwatch.embedded_broker import EmbeddedBroker
from shared.layout import Facility, load_facility
from tests.sparkplug import SparkplugRecorder, TahuCodec

pytest_plugins = ["tests.expected_skips"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_LAYOUT = REPO / "examples" / "facility.yaml"
MQTT_ENV = "DEPOTWATCH_TEST_MQTT_URL"
DATABASE_ENV = "DEPOTWATCH_TEST_DATABASE_URL"
SERVERS_ONLY_ENV = "DEPOTWATCH_TEST_SERVERS_ONLY"
# The fixtures through which a test reaches the broker or the database the variables above choose.
SERVER_FIXTURES = frozenset({"mqtt_url", "database_factory"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--live-s",
        type=float,
        default=50.0,
        help="Seconds the live run of tests/test_flows.py records before it is replayed (an hour: "
        "--live-s 3600 --timeout 5400).",
    )
    parser.addoption(
        "--soak-s",
        type=float,
        default=60.0,
        help="Seconds of mixed valid and hostile traffic in tests/test_soak.py (a database outage a "
        "third of the way in).",
    )
    parser.addoption(
        "--watermark-s",
        type=float,
        default=0.5,
        help="The cloud's watermark in that test: how late in transit a detection may be and still count "
        "live where a replay counts it (raise it for a long run on a busy machine).",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under DEPOTWATCH_TEST_SERVERS_ONLY, deselect the tests that reach neither server."""
    if os.environ.get(SERVERS_ONLY_ENV) != "1":
        return
    keep, drop = [], []
    for item in items:
        uses = SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
        (keep if uses or item.get_closest_marker("servers") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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


@pytest.fixture
def redelivering_mqtt_url(mqtt_url: str) -> str:
    """A broker that redelivers unacknowledged QoS 1 messages when a persistent session resumes.

    The embedded amqtt 0.12 does not (https://github.com/Yakifo/amqtt/issues/401: it drops in-flight
    state when a connection closes), so these tests run against Mosquitto (CI's second pass).
    """
    if not os.environ.get(MQTT_ENV):
        pytest.skip("the embedded amqtt broker does not redeliver in-flight messages (amqtt issue 401)")
    return mqtt_url


@pytest.fixture
def stock_mosquitto_url(tmp_path: Path) -> Iterator[str]:
    """A private Mosquitto with Mosquitto's default limits (20 messages in flight per client, 1000
    queued), as a depot's broker installed from a package has them."""
    from tests.brokers import PrivateMosquitto

    broker = PrivateMosquitto(tmp_path).start()
    yield broker.url
    broker.stop()


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


DatabaseFactory = Callable[[], str]


@pytest.fixture(scope="session")
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    """Makes empty databases: SQLite files by default, PostgreSQL databases (dropped at the end of
    the session) when DEPOTWATCH_TEST_DATABASE_URL names a PostgreSQL server."""
    external = os.environ.get(DATABASE_ENV)
    created: list[str] = []
    admin = None
    if external and make_url(external).drivername.startswith("postgresql"):
        admin = create_engine(make_url(external), isolation_level="AUTOCOMMIT")

    def make() -> str:
        if external and admin is None:
            return external
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('db') / 'depotwatch.sqlite'}"
        name = f"depotwatch_test_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return make_url(external).set(database=name).render_as_string(hide_password=False)  # type: ignore[arg-type]

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(database_factory: DatabaseFactory) -> str:
    """URL of an empty database for this test session."""
    return database_factory()


@pytest.fixture(scope="session")
def codec() -> Iterator[TahuCodec]:
    """Eclipse Tahu's Sparkplug B codec, in one Node.js process for the session."""
    codec = TahuCodec()
    yield codec
    codec.close()


@pytest.fixture
def recorder(mqtt_url: str, codec: TahuCodec) -> Iterator[SparkplugRecorder]:
    """Everything published under spBv1.0/ on the test broker, from now on."""
    recorder = SparkplugRecorder(mqtt_url, codec)
    yield recorder
    recorder.stop()
