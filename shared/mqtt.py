"""The one MQTT adapter over paho 2.x that edge and cloud use.

paho's network thread only hands received messages to a bounded queue; a worker
thread owned by this object runs the handler, so one bad payload is logged with its topic and counted.
Received QoS 1 messages are acknowledged to the broker only once handled: a plain handler's message when
the handler returns, an acking handler's when it calls `ack` (the cloud does after its database commit),
so a crash loses nothing the broker has not been told is safe. Acknowledgements leave in the order the
messages arrived, whatever order they are finished in (`shared.mqtt_acks`); a message no handler
wants, or one its handler raised on, is acknowledged too, since each one left unacknowledged holds a
place in the broker's in-flight window for good. When the queue is full the network thread waits (the
broker holds the rest) instead of dropping. Connection state is real: a refused
CONNACK is a failure, not "connected". paho reconnects with backoff; subscriptions are renewed on
every connect.

A connect attempt that fails (refused port, unknown host, TLS, a CONNACK refusal such as bad
credentials, the broker hanging up before answering) is counted and logged naming the broker and the
reason: the first at once, then at most once per `failure_log_every_s` while it persists (or when the
reason changes), and one line when it finally connects. `state()` tells health reports where the link
stands. paho reports a failed TCP/TLS connect only through `on_connect_fail`, without the error: it
calls it inside its `except OSError`, so `sys.exception()` there is that error.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr, field_validator, model_validator

from shared.errors import ConfigIssue, DepotwatchError
from shared.mqtt_acks import AckOrder, Ticket
from shared.strict import StrictModel

log = logging.getLogger(__name__)

# Reconnect backoff bounds (seconds): quick after a blip, no storm during a long broker outage.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
# A broker that stays unreachable is logged at most this often (the first failure at once): a node
# that retries every 30 s for a week must not fill its disk, nor stay silent.
FAILURE_LOG_EVERY_S = 60.0
# Received messages waiting for the handler; beyond this paho's thread waits (TCP backpressure).
RECEIVE_QUEUE = 10_000
# Unacknowledged QoS 1 messages an MQTT 5 broker may send us at once: room for a database batch.
RECEIVE_MAXIMUM = 2_000
# How long an MQTT 5 broker keeps a persistent session (and its queued messages) while we are away.
SESSION_EXPIRY_S = 7 * 24 * 3600
# Topics remembered with their subscription (a site has a few per camera).
ROUTE_CACHE = 50_000
PLACEHOLDER_SECRETS = {"changeme", "change-me", "change_me", "password", "secret", "xxx", "todo"}


class MqttError(DepotwatchError):
    """The broker cannot be used: bad URL, TLS files missing, publish refused."""


class BrokerConfig(StrictModel):
    """How to reach the broker."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port, or mqtts:// for TLS.")
    username: str = Field("", description="User name; empty for anonymous access.")
    password: SecretStr = Field(SecretStr(""), description="Password; placeholders are refused.")
    ca_file: Path | None = Field(None, description="CA certificate bundle for mqtts://.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Client key for mutual TLS.")
    keepalive_s: int = Field(15, ge=5, le=600, description="Keepalive; also how soon the Will fires.")
    protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="MQTT version (the embedded broker speaks 3.1.1)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{value!r} is not mqtt://host:port or mqtts://host:port")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        if self.password.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("password is a placeholder; set the real one (e.g. via the environment)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def missing_files(self, key: str = "broker") -> list[ConfigIssue]:
        """The TLS files this config names that do not exist, each as an issue of its key under `key`;
        a service checks them when it loads its config, so a missing one fails at start."""
        files = {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}
        return [
            ConfigIssue(f"{key}.{name}", f"{path} does not exist")
            for name, path in files.items()
            if path is not None and not path.is_file()
        ]

    @property
    def host(self) -> str:
        """The broker's host name (127.0.0.1 if the URL has none)."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The broker's port: the URL's, else 8883 for mqtts:// and 1883 for mqtt://."""
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        """Whether the broker is reached over TLS (an mqtts:// URL)."""
        return urlsplit(self.url).scheme == "mqtts"


@dataclass(frozen=True)
class LinkState:
    """Where the connection to the broker stands (for /healthz and metrics)."""

    url: str
    connected: bool
    ever_connected: bool
    failed_attempts: int  # consecutive: since the last successful connect (or the start)
    failures_total: int
    last_error: str | None  # why the latest attempt failed; None until one has
    down_for_s: float | None  # since the link was lost, or since start() if never up; None when up


@dataclass(frozen=True)
class Will:
    """Last Will: published by the broker if this client vanishes."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


Handler = Callable[[str, bytes], None]
Ack = Callable[[], None]
# Takes the message and a callable that acknowledges it; the message counts as unhandled until then.
AckingHandler = Callable[[str, bytes, Ack], None]


@dataclass(frozen=True)
class _Subscription:
    qos: int
    handler: Handler | AckingHandler
    acking: bool


@dataclass(frozen=True)
class _Received:
    topic: str
    payload: bytes
    subscription: _Subscription
    ticket: Ticket


def _unshared(topic_filter: str) -> str:
    """The filter a shared subscription (`$share/<group>/<filter>`) matches topics with."""
    if topic_filter.startswith("$share/"):
        return topic_filter.split("/", 2)[2]
    return topic_filter


class MqttConnection:
    """A paho client with an owned handler thread; `start()` connects in the background."""

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        *,
        clean_session: bool = True,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_published: Callable[[int], None] | None = None,
        on_connect_failed: Callable[[str], None] | None = None,
        will: Will | None = None,
        reconnect_s: tuple[int, int] = (RECONNECT_MIN_S, RECONNECT_MAX_S),
        failure_log_every_s: float = FAILURE_LOG_EVERY_S,
    ) -> None:
        self.config = config
        self.client_id = client_id
        protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else clean_session,
            manual_ack=True,
        )
        self._persistent = not clean_session
        self._reconnect_s = reconnect_s
        self._client.reconnect_delay_set(*reconnect_s)
        self._client.max_inflight_messages_set(200)
        if config.username:
            self._client.username_pw_set(config.username, config.password.get_secret_value() or None)
        if will is not None:
            self.set_will(will)
        self._subscriptions: dict[str, _Subscription] = {}
        # Topic → its subscription: paho's topic_matches_sub builds a matcher per call, which at
        # thousands of messages a second was the network thread's largest cost.
        self._routes: dict[str, _Subscription | None] = {}
        self._received: queue.Queue[_Received] = queue.Queue(RECEIVE_QUEUE)
        self._acks = AckOrder(self._client.ack)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._handle_loop, name=f"mqtt-{client_id}", daemon=True)
        self._user_on_connect = on_connect
        self._user_on_disconnect = on_disconnect
        self._user_on_published = on_published
        self._user_on_connect_failed = on_connect_failed
        self.connected = threading.Event()
        # Set once the broker has acknowledged every subscription of the current connection.
        self.subscribed = threading.Event()
        self._pending_subacks: set[int] = set()
        self._early_subacks: set[int] = set()
        self._unacked: set[int] = set()
        self._acked_early: set[int] = set()
        self._unacked_lock = threading.Lock()
        self._reconnecting = False  # reconnect() is ending the session on purpose
        self.handler_errors = 0
        self.receive_full_waits = 0
        self.connects = 0
        # Connection attempts, written on paho's thread and read by health reports.
        self._state_lock = threading.Lock()
        self._failure_log_every_s = failure_log_every_s
        self._attempt_open = False  # an attempt began and has neither succeeded nor failed yet
        self._failed_attempts = 0
        self._failures_total = 0
        self._last_error: str | None = None
        self._down_since: float | None = None
        self._failing_since: float | None = None
        self._failure_logged: tuple[float, str] | None = None  # when, and the reason then
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish

    def _configure_tls(self) -> None:
        for path in (self.config.ca_file, self.config.cert_file, self.config.key_file):
            if path is not None and not path.is_file():
                raise MqttError(f"TLS file {path} does not exist")
        self._client.tls_set(
            ca_certs=str(self.config.ca_file) if self.config.ca_file else None,
            certfile=str(self.config.cert_file) if self.config.cert_file else None,
            keyfile=str(self.config.key_file) if self.config.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )

    def set_will(self, will: Will) -> None:
        """Set the Will used from the next connect on."""
        self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect; each message is acknowledged
        when the handler returns."""
        self._add_subscription(topic_filter, _Subscription(qos, handler, acking=False))

    def subscribe_acking(self, topic_filter: str, handler: AckingHandler, qos: int = 1) -> None:
        """Like `subscribe`, but the handler acknowledges each message itself, when it is safe."""
        self._add_subscription(topic_filter, _Subscription(qos, handler, acking=True))

    def _add_subscription(self, topic_filter: str, subscription: _Subscription) -> None:
        self._subscriptions[topic_filter] = subscription
        self._routes = {}
        if self.connected.is_set():
            self._send_subscribe(topic_filter, subscription.qos)

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting until `stop()`. Raises MqttError when a
        TLS file of the config is missing (read here, not when built: constructors do no I/O)."""
        if self.config.tls:
            self._configure_tls()
        with self._state_lock:
            self._down_since = time.monotonic()
        self._worker.start()
        self._connect_async()

    def _connect_async(self) -> None:
        properties = None
        # MQTT 5 only (3.1.1 takes clean_session from the client): a session that is not kept starts
        # clean on every connect, reconnects included (as Sparkplug asks of its clients).
        clean_start: bool | Literal[3] = True
        if self.config.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.ReceiveMaximum = RECEIVE_MAXIMUM
            if self._persistent:
                properties.SessionExpiryInterval = SESSION_EXPIRY_S
                clean_start = False
        self._client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=clean_start,
            properties=properties,
        )
        self._client.loop_start()

    def _send_subscribe(self, topic_filter: str, qos: int) -> None:
        self.subscribed.clear()
        _, mid = self._client.subscribe(topic_filter, qos)
        if mid is None:
            return
        with self._unacked_lock:
            if int(mid) in self._early_subacks:  # the SUBACK beat us here
                self._early_subacks.discard(int(mid))
                if not self._pending_subacks:
                    self.subscribed.set()
            else:
                self._pending_subacks.add(int(mid))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _codes: Any, _p: Any = None) -> None:
        with self._unacked_lock:
            if mid not in self._pending_subacks:
                self._early_subacks.add(mid)
                return
            self._pending_subacks.discard(mid)
            if not self._pending_subacks:
                self.subscribed.set()

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until the broker acknowledged every subscription, or timeout."""
        return self.subscribed.wait(timeout)

    def state(self) -> LinkState:
        """A consistent snapshot of the connection and its failed attempts."""
        with self._state_lock:
            connected = self.connected.is_set()
            down_since = None if connected else self._down_since
            return LinkState(
                url=self.config.url,
                connected=connected,
                ever_connected=self.connects > 0,
                failed_attempts=self._failed_attempts,
                failures_total=self._failures_total,
                last_error=self._last_error,
                down_for_s=None if down_since is None else time.monotonic() - down_since,
            )

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or timeout."""
        return self.connected.wait(timeout)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Queue a publish; returns its message id, or None when paho refused it (not connected)."""
        # Never hold our lock while calling paho: its network thread calls _on_publish holding its own.
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        mid = int(info.mid)
        with self._unacked_lock:
            if mid in self._acked_early or qos == 0:
                self._acked_early.discard(mid)
            else:
                self._unacked.add(mid)
        return mid

    def reconnect(self, timeout: float = 5.0, connect_again: Callable[[], bool] = lambda: True) -> None:
        """End this session cleanly and open a new one at once, for a protocol that tells a client to
        start over (Sparkplug, when its primary host goes offline): let queued publishes reach the
        broker (up to `timeout`), disconnect (the broker drops the Will; `on_disconnect` runs, and may
        set the next one), connect again unless stopped meanwhile or `connect_again()` says no (its
        owner is stopping). Never from paho's thread (one of this connection's callbacks): it joins that
        thread."""
        self._wait_published(timeout)
        self._reconnecting = True
        try:
            self._client.disconnect()
            self._client.loop_stop()
        finally:
            self._reconnecting = False
        if not self._stop.is_set() and connect_again():
            self._connect_async()

    def _wait_published(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._unacked and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0, drain: Callable[[], object] | None = None) -> None:
        """Let queued publishes reach the broker (while connected, up to `timeout`), stop handling, run
        `drain` (the consumer commits and acknowledges what it took), then disconnect cleanly (no Will).
        Messages still unacknowledged stay with the broker for the next session."""
        self._wait_published(timeout)
        self._stop.set()
        self._worker.join(timeout)
        if drain is not None:
            self._safely(drain, "drain")
        self._client.disconnect()
        self._client.loop_stop()

    # paho's thread -------------------------------------------------------------------------

    def _on_pre_connect(self, _c: Any, _u: Any) -> None:
        with self._state_lock:
            self._attempt_open = True

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        self._attempt_failed(describe_connect_error(sys.exception(), self.config), refused=False)

    def _attempt_failed(self, reason: str, *, refused: bool) -> None:
        """Count a failed attempt; log it if it is the first, the reason changed, or the window passed."""
        if self._stop.is_set():
            return
        now = time.monotonic()
        with self._state_lock:
            self._attempt_open = False
            self._failed_attempts += 1
            self._failures_total += 1
            self._last_error = reason
            if self._failing_since is None:
                self._failing_since = now
            attempts, failing_for = self._failed_attempts, now - self._failing_since
            logged = self._failure_logged
            due = logged is None or logged[1] != reason or now - logged[0] >= self._failure_log_every_s
            if due:
                self._failure_logged = (now, reason)
        if due:
            if logged is None:
                what, count = "cannot connect", f"attempt {attempts}"
            else:
                what, count = "still cannot connect", f"{attempts} failed attempts over {failing_for:.0f} s"
            log.log(
                logging.ERROR if refused else logging.WARNING,
                "MQTT %s: %s to broker %s: %s (%s, retrying with backoff up to %d s)",
                self.client_id,
                what,
                self.config.url,
                reason,
                count,
                self._reconnect_s[1],
            )
        if self._user_on_connect_failed is not None:
            self._safely(lambda: self._user_on_connect_failed(reason), "on_connect_failed")  # type: ignore[misc]

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any = None) -> None:
        if reason.is_failure:
            self._attempt_failed(f"the broker refused the connection: {reason}", refused=True)
            return
        with self._state_lock:
            self._attempt_open = False
            attempts, failing_since = self._failed_attempts, self._failing_since
            self._failed_attempts = 0
            self._failing_since = self._failure_logged = self._down_since = None
            self.connects += 1
        self._acks.new_connection()
        if attempts and failing_since is not None:
            log.info(
                "MQTT %s: connected to %s after %d failed attempts over %.0f s",
                self.client_id,
                self.config.url,
                attempts,
                time.monotonic() - failing_since,
            )
        else:
            log.info("MQTT %s: connected to %s", self.client_id, self.config.url)
        for topic_filter, subscription in self._subscriptions.items():
            self._send_subscribe(topic_filter, subscription.qos)
        if not self._subscriptions:
            self.subscribed.set()
        self.connected.set()
        if self._user_on_connect is not None:
            self._safely(self._user_on_connect, "on_connect")

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any = None) -> None:
        with self._state_lock:
            was_connected = self.connected.is_set()
            self.connected.clear()
            if was_connected:
                self._down_since = time.monotonic()
            unanswered = self._attempt_open
        if unanswered:  # the broker hung up before its CONNACK (or the TLS layer did)
            self._attempt_failed(f"the connection closed before the broker answered: {reason}", refused=False)
        self.subscribed.clear()
        with self._unacked_lock:
            self._pending_subacks.clear()
            self._early_subacks.clear()
            self._unacked.clear()  # paho resends or the caller's spool does; nothing to wait for
            self._acked_early.clear()
        if self._reconnecting:
            log.info("MQTT %s: ended the session with %s, connecting again", self.client_id, self.config.url)
        elif was_connected and not self._stop.is_set():
            log.warning("MQTT %s: lost the connection to %s: %s", self.client_id, self.config.url, reason)
        if self._user_on_disconnect is not None:
            self._safely(self._user_on_disconnect, "on_disconnect")

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._unacked_lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
            else:
                self._acked_early.add(mid)  # acknowledged before publish() recorded it
        if self._user_on_published is not None:
            self._safely(lambda: self._user_on_published(mid), "on_published")  # type: ignore[misc]

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        ticket = self._acks.take(message.mid, message.qos)
        subscription = self._route(message.topic)
        if subscription is None:
            self._acks.done(ticket)  # no handler will ever want it
            return
        item = _Received(message.topic, bytes(message.payload), subscription, ticket)
        while not self._stop.is_set():
            try:
                self._received.put(item, timeout=0.5)
                return
            except queue.Full:
                self.receive_full_waits += 1
                log.warning("MQTT %s: handler is behind; waiting to queue more", self.client_id)

    def _route(self, topic: str) -> _Subscription | None:
        try:
            return self._routes[topic]
        except KeyError:
            pass
        found = next(
            (sub for f, sub in self._subscriptions.items() if mqtt.topic_matches_sub(_unshared(f), topic)),
            None,
        )
        if len(self._routes) >= ROUTE_CACHE:
            self._routes = {}
        self._routes[topic] = found
        return found

    # handler thread --------------------------------------------------------------------------

    def _handle_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._received.get(timeout=0.2)
            except queue.Empty:
                continue
            ack = functools.partial(self._acks.done, item.ticket)
            try:
                if item.subscription.acking:
                    item.subscription.handler(item.topic, item.payload, ack)  # type: ignore[call-arg]
                else:
                    item.subscription.handler(item.topic, item.payload)  # type: ignore[call-arg]
                    ack()
            except Exception:
                self.handler_errors += 1
                log.exception("MQTT %s: handler failed on a message from %s", self.client_id, item.topic)
                # A handler bug must neither bring the same message back forever nor, left
                # unacknowledged, hold up every message behind it.
                ack()

    @property
    def in_flight(self) -> int:
        """Messages published on this connection that the broker has not acknowledged yet."""
        with self._unacked_lock:
            return len(self._unacked)

    @property
    def unacknowledged(self) -> int:
        """Messages received on this connection and not yet acknowledged to the broker."""
        return self._acks.waiting

    def _safely(self, fn: Callable[[], object], what: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("MQTT %s: %s callback failed", self.client_id, what)


def describe_connect_error(error: BaseException | None, config: BrokerConfig) -> str:
    """Why a connect attempt failed, in words for a log line or /healthz (paho passes no error)."""
    if error is None:
        return "the connection failed"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host {config.host!r}: {error.strerror}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was not accepted: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        detail = error.reason.replace("_", " ").lower() if error.reason else str(error)
        return f"TLS handshake failed: {detail}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "no answer (timed out)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[:1].lower() + error.strerror[1:]
    return str(error) or type(error).__name__
