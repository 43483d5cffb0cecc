"""The playbook that writes Mosquitto's users and ACLs, run for real (ansible-playbook, local), and its
files enforced by a real Mosquitto: an edge node publishes under its own topics, never another's."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.deployment import MOSQUITTO, mosquitto, write_mosquitto_users
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (sudo make system-deps installs it)"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    out = tmp_path_factory.mktemp("mosquitto")
    users = ["cloud", "recognition", "replay", "scada"] + [f"edge-bay{n}" for n in range(1, 5)]
    passwords = {user: uuid.uuid4().hex for user in users}
    first = write_mosquitto_users(out, passwords)
    assert first.returncode == 0, first.stdout + first.stderr
    second = write_mosquitto_users(out, passwords)
    assert second.returncode == 0 and "changed=0" in second.stdout, second.stdout
    with mosquitto(out) as port:
        yield port, passwords


def _client(port: int, user: str, password: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}")
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _published_as(
    port: int,
    passwords: dict[str, str],
    user: str,
    denied: str,
    allowed: str,
    reader: tuple[str, str] = ("cloud", "depotwatch/v1/depot-north/#"),
) -> list[str]:
    """Topics the reader (the cloud unless told) receives when `user` publishes to `denied`, then to
    `allowed`."""
    received: queue.Queue[str] = queue.Queue()
    cloud = _client(port, reader[0], passwords[reader[0]])
    cloud.on_message = lambda _c, _u, message: received.put(message.topic)
    subscribed = queue.Queue[int]()
    cloud.on_subscribe = lambda *_: subscribed.put(1)
    cloud.subscribe(reader[1], qos=1)
    subscribed.get(timeout=5)
    publisher = _client(port, user, passwords[user])
    try:
        publisher.publish(denied, b"{}", qos=1).wait_for_publish(5)
        publisher.publish(allowed, b"{}", qos=1).wait_for_publish(5)
        arrived = [wait_until(lambda: received.get(timeout=5), 6, f"{user}'s allowed message")]
        while not received.empty():
            arrived.append(received.get())
        return arrived
    finally:
        for client in (cloud, publisher):
            client.disconnect()
            client.loop_stop()


def test_a_node_publishes_under_its_own_topics_only(site: tuple[int, dict[str, str]]) -> None:
    own = "depotwatch/v1/depot-north/flow/prod/det/edge-bay1/T1-C1"
    other = "depotwatch/v1/depot-north/flow/prod/det/edge-bay2/T2-C1"
    # The other node's topic never reaches the cloud.
    assert _published_as(*site, "edge-bay1", denied=other, allowed=own) == [own]


def test_a_node_publishes_sparkplug_as_its_own_node_only(site: tuple[int, dict[str, str]]) -> None:
    own = "spBv1.0/depot-north/NBIRTH/edge-bay1"
    other = "spBv1.0/depot-north/NBIRTH/edge-bay2"
    scada = ("scada", "spBv1.0/depot-north/#")
    assert _published_as(*site, "edge-bay1", denied=other, allowed=own, reader=scada) == [own]
    facility = "spBv1.0/depot-north/DBIRTH/facility/track-T1"
    assert _published_as(*site, "cloud", denied=other, allowed=facility, reader=scada) == [facility]


def test_replays_go_into_the_replay_flows_never_prod(site: tuple[int, dict[str, str]]) -> None:
    into_prod = "depotwatch/v1/depot-north/flow/prod/det/edge-bay1/T1-C1"
    into_replay = "depotwatch/v1/depot-north/flow/replay/det/edge-bay1/T1-C1"
    assert _published_as(*site, "replay", denied=into_prod, allowed=into_replay) == [into_replay]


def test_a_wrong_password_is_refused(site: tuple[int, dict[str, str]]) -> None:
    port, _ = site
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set("edge-bay1", "not-the-password")
    codes: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: codes.put(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert codes.get(timeout=5).is_failure  # type: ignore[attr-defined]
    client.loop_stop()


def test_a_missing_password_stops_the_playbook_naming_the_user(tmp_path: Path) -> None:
    result = write_mosquitto_users(tmp_path, {"cloud": "x", "recognition": "y"})
    assert result.returncode != 0 and "mqtt_passwords has no entry for edge-bay1" in result.stdout
