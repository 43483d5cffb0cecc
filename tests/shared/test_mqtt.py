"""The MQTT adapter against a real broker: acknowledgement after handling, persistent sessions, and
connect attempts that fail (logged, rate-limited, with their reason)."""

from __future__ import annotations

import logging
import re
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from shared.mqtt import Ack, BrokerConfig, MqttConnection, MqttError
from shared.mqtt_acks import AckOrder
from shared.topics import shared_subscription
from tests.brokers import PrivateMosquitto, RestartableBroker
from tests.waiting import wait_until


class Taker:
    """An acking handler that acknowledges only when told to."""

    def __init__(self, acknowledge: bool) -> None:
        self.acknowledge = acknowledge
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, _topic: str, payload: bytes, ack: Ack) -> None:
        with self.lock:
            self.payloads.append(payload)
        if self.acknowledge:
            ack()


def _subscriber(mqtt_url: str, client_id: str, topic: str, taker: Taker) -> MqttConnection:
    link = MqttConnection(BrokerConfig(url=mqtt_url), client_id, clean_session=False)
    link.subscribe_acking(topic, taker)
    link.start()
    assert link.wait_connected(5) and link.wait_subscribed(5)
    return link


def test_a_message_not_acknowledged_is_redelivered_in_the_next_session(redelivering_mqtt_url: str) -> None:
    mqtt_url = redelivering_mqtt_url
    topic = f"depotwatch-test/{uuid.uuid4().hex[:8]}/x"
    client_id = f"acking-{uuid.uuid4().hex[:8]}"
    publisher = MqttConnection(BrokerConfig(url=mqtt_url), f"pub-{uuid.uuid4().hex[:8]}")
    publisher.start()
    assert publisher.wait_connected(5)

    forgetful = Taker(acknowledge=False)
    link = _subscriber(mqtt_url, client_id, topic, forgetful)
    publisher.publish(topic, b"first")
    wait_until(lambda: forgetful.payloads == [b"first"], 5, "the first delivery")
    link.stop()  # it took the message but never acknowledged it

    careful = Taker(acknowledge=True)
    link = _subscriber(mqtt_url, client_id, topic, careful)
    wait_until(lambda: careful.payloads == [b"first"], 10, "the redelivery")
    publisher.publish(topic, b"second")
    wait_until(lambda: careful.payloads == [b"first", b"second"], 5, "the next message")
    link.stop()

    after = Taker(acknowledge=True)
    link = _subscriber(mqtt_url, client_id, topic, after)
    publisher.publish(topic, b"third")
    wait_until(lambda: after.payloads == [b"third"], 5, "only the new message")
    link.stop()
    publisher.stop()


def test_plain_handlers_are_acknowledged_even_when_they_fail(mqtt_url: str) -> None:
    topic = f"depotwatch-test/{uuid.uuid4().hex[:8]}/y"
    client_id = f"plain-{uuid.uuid4().hex[:8]}"
    seen: list[bytes] = []

    def failing(_topic: str, payload: bytes) -> None:
        seen.append(payload)
        raise ValueError("a handler bug")

    publisher = MqttConnection(BrokerConfig(url=mqtt_url), f"pub-{uuid.uuid4().hex[:8]}")
    publisher.start()
    assert publisher.wait_connected(5)
    for round_ in range(2):
        link = MqttConnection(BrokerConfig(url=mqtt_url), client_id, clean_session=False)
        link.subscribe(topic, failing)
        link.start()
        assert link.wait_connected(5) and link.wait_subscribed(5)
        if round_ == 0:
            publisher.publish(topic, b"poison")
            wait_until(lambda: seen == [b"poison"], 5, "the failing handler")
        else:
            publisher.publish(topic, b"next")
            wait_until(lambda: seen[-1] == b"next", 5, "the next message")
        link.stop()
        assert link.handler_errors == 1
    assert seen == [b"poison", b"next"]  # the poison message did not come back
    publisher.stop()


def test_acknowledgements_leave_in_arrival_order_whatever_order_messages_finish_in() -> None:
    sent: list[int] = []
    order = AckOrder(lambda mid, _qos: sent.append(mid))
    first, second, third = (order.take(mid, 1) for mid in (11, 12, 13))
    order.done(third)
    order.done(second)
    assert sent == []  # the first is not finished: nothing may go out before it
    order.done(first)
    assert sent == [11, 12, 13]
    order.done(first)  # finishing twice sends nothing twice
    assert sent == [11, 12, 13] and order.waiting == 0


def test_tickets_of_an_earlier_connection_are_never_acknowledged() -> None:
    sent: list[int] = []
    order = AckOrder(lambda mid, _qos: sent.append(mid))
    old = order.take(5, 1)
    order.new_connection()  # the broker redelivers message 5, maybe under another packet id
    new = order.take(5, 1)
    order.done(old)
    assert sent == [] and order.waiting == 1
    order.done(new)
    assert sent == [5]
    order.done(order.take(6, 0))  # QoS 0 has nothing to acknowledge
    assert sent == [5] and order.waiting == 0


def test_acking_handlers_finishing_out_of_order_and_failing_leave_nothing_in_flight(
    stock_mosquitto_url: str,
) -> None:
    """A pool finishing thumbnails in its own order, and a handler that raises, on a stock Mosquitto
    (20 in flight): every message is still acknowledged, so the 101st arrives like the first."""
    topic = f"depotwatch-test/{uuid.uuid4().hex[:8]}/z"
    held: list[Ack] = []
    seen: list[bytes] = []

    def handler(_topic: str, payload: bytes, ack: Ack) -> None:
        seen.append(payload)
        if payload.startswith(b"raise"):
            raise ValueError("a handler bug")
        held.append(ack)
        if len(held) == 3:  # finish them newest first
            for later in reversed(held):
                later()
            held.clear()

    link = MqttConnection(BrokerConfig(url=stock_mosquitto_url), f"pool-{uuid.uuid4().hex[:8]}")
    link.subscribe_acking(topic, handler)
    link.start()
    assert link.wait_connected(5) and link.wait_subscribed(5)
    publisher = MqttConnection(BrokerConfig(url=stock_mosquitto_url), f"pub-{uuid.uuid4().hex[:8]}")
    publisher.start()
    assert publisher.wait_connected(5)
    try:
        for k in range(100):  # 10 raise, 90 are finished three at a time, newest first
            publisher.publish(topic, b"raise" if k % 10 == 0 else b"%d" % k)
        wait_until(lambda: len(seen) == 100, 10, "100 messages")
        assert link.unacknowledged == 0
        publisher.publish(topic, b"last")
        wait_until(lambda: seen[-1] == b"last", 5, "the 101st message")
    finally:
        link.stop()
        publisher.stop()


def test_a_shared_subscription_reaches_its_handler(stock_mosquitto_url: str) -> None:
    """An MQTT 5 shared subscription (`$share/<group>/<filter>`, how cloud replicas and recognition
    workers split a stream) delivers to the handler; its messages were once taken for nobody's and
    acknowledged unhandled."""
    topic = f"depotwatch-test/{uuid.uuid4().hex[:8]}/shared"
    seen: list[bytes] = []
    config = BrokerConfig(url=stock_mosquitto_url, protocol="5")
    link = MqttConnection(config, f"replica-{uuid.uuid4().hex[:8]}")
    link.subscribe(shared_subscription("workers", topic), lambda _t, payload: seen.append(payload))
    link.start()
    publisher = MqttConnection(config, f"pub-{uuid.uuid4().hex[:8]}")
    publisher.start()
    try:
        assert link.wait_connected(5) and link.wait_subscribed(5) and publisher.wait_connected(5)
        publisher.publish(topic, b"for one of the group")
        wait_until(lambda: seen == [b"for one of the group"], 5, "the shared message")
    finally:
        link.stop()
        publisher.stop()


def _connect_lines(caplog: pytest.LogCaptureFixture, client_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "shared.mqtt" and f"MQTT {client_id}: " in r.getMessage() and "connect" in r.getMessage()
    ]


def test_an_unreachable_broker_is_logged_at_once_then_once_per_window_then_its_connect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shared.mqtt")
    broker = RestartableBroker(tmp_path)  # its port is chosen, nothing listens there yet
    client_id = f"lonely-{uuid.uuid4().hex[:8]}"
    link = MqttConnection(
        BrokerConfig(url=broker.url), client_id, reconnect_s=(1, 1), failure_log_every_s=2.5
    )
    link.start()
    try:
        lines = wait_until(
            lambda: found if len(found := _connect_lines(caplog, client_id)) >= 2 else None,
            15,
            "two failure lines",
        )
        first, again = lines[0], lines[1]
        assert first.levelno == logging.WARNING
        assert first.getMessage().endswith(
            f"cannot connect to broker {broker.url}: connection refused "
            "(attempt 1, retrying with backoff up to 1 s)"
        )
        repeated = re.search(
            rf"still cannot connect to broker {re.escape(broker.url)}: connection refused "
            r"\((\d+) failed attempts over \d+ s,",
            again.getMessage(),
        )
        assert repeated, again.getMessage()
        assert int(repeated[1]) >= 2
        assert again.created - first.created >= 2.5 - 0.05, "a second line inside the window"
        state = link.state()
        assert not state.connected and not state.ever_connected
        assert state.last_error == "connection refused" and state.failed_attempts >= 2
        assert state.down_for_s is not None and state.down_for_s > 2

        broker.start()
        assert link.wait_connected(10)
        failures = link.state().failures_total
        connected = wait_until(
            lambda: [r for r in _connect_lines(caplog, client_id) if "connected to" in r.getMessage()],
            5,
            "the connect line",
        )
        assert re.search(
            rf"connected to {re.escape(broker.url)} after {failures} failed attempts over \d+ s$",
            connected[0].getMessage(),
        ), connected[0].getMessage()
        state = link.state()
        assert state.connected and state.ever_connected and state.failed_attempts == 0
        assert state.down_for_s is None and state.failures_total == failures
    finally:
        link.stop()
        broker.stop()


def _self_signed(workdir: Path) -> str:
    """Mosquitto settings for TLS on its listener with a certificate no system CA signed."""
    cert, key = workdir / "server.crt", workdir / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return f"certfile {cert}\nkeyfile {key}\n"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("bad credentials", "the broker refused the connection: Not authorized"),
        ("unknown host", "cannot resolve host 'depotwatch-no-such-broker.invalid': "),
        ("untrusted certificate", "TLS: the broker's certificate was not accepted: "),
    ],
)
def test_each_kind_of_failed_connect_is_reported_with_its_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, reason: str
) -> None:
    caplog.set_level(logging.INFO, logger="shared.mqtt")
    broker = None
    if case == "bad credentials":
        broker = PrivateMosquitto(tmp_path, "allow_anonymous false\n").start()
        config = BrokerConfig(url=broker.url, username="depotwatch", password="not-the-password")
    elif case == "unknown host":
        config = BrokerConfig(url="mqtt://depotwatch-no-such-broker.invalid:1883")
    else:
        broker = PrivateMosquitto(tmp_path, _self_signed(tmp_path)).start()
        config = BrokerConfig(url=f"mqtts://127.0.0.1:{broker.port}")
    client_id = f"failing-{uuid.uuid4().hex[:8]}"
    link = MqttConnection(config, client_id)
    link.start()
    try:
        state = wait_until(lambda: s if (s := link.state()).failed_attempts else None, 10, "a failed attempt")
        lines = wait_until(lambda: _connect_lines(caplog, client_id), 5, "the failure line")
    finally:
        link.stop()
        if broker is not None:
            broker.stop()
    assert state.last_error is not None and state.last_error.startswith(reason), state.last_error
    assert not state.connected and state.failures_total == state.failed_attempts
    assert f"cannot connect to broker {config.url}: {reason}" in lines[0].getMessage()
    assert "(attempt 1, " in lines[0].getMessage()


def test_tls_files_are_read_when_the_connection_starts_not_when_it_is_built(tmp_path: Path) -> None:
    missing = tmp_path / "ca.crt"
    config = BrokerConfig(url="mqtts://127.0.0.1:8883", ca_file=missing)
    link = MqttConnection(config, "tls-files")  # building one reads nothing
    with pytest.raises(MqttError, match=f"TLS file {re.escape(str(missing))} does not exist"):
        link.start()
