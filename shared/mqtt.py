"""The one MQTT adapter over paho 2.x that edge and cloud use.

paho's network thread only hands received messages to a bounded queue; a worker
thread owned by this object runs the handler, so one slow or failing handler never blocks the network
loop and one bad payload is logged with its topic and counted. Connection state is real: a refused
CONNACK is a failure, not "connected". paho reconnects with backoff; subscriptions are renewed on
every connect.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import Field, SecretStr, field_validator, model_validator

from shared.errors import DepotwatchError
from shared.strict import StrictModel

log = logging.getLogger(__name__)

# Reconnect backoff bounds (seconds): quick after a blip, no storm during a long broker outage.
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
# Received messages waiting for the handler; beyond this the oldest are dropped and counted.
RECEIVE_QUEUE = 10_000
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

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


@dataclass(frozen=True)
class Will:
    """Last Will: published by the broker if this client vanishes."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


Handler = Callable[[str, bytes], None]


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
        will: Will | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id
        protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else clean_session,
        )
        self._client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        self._client.max_inflight_messages_set(200)
        if config.username:
            self._client.username_pw_set(config.username, config.password.get_secret_value() or None)
        if config.tls:
            self._configure_tls()
        if will is not None:
            self.set_will(will)
        self._subscriptions: dict[str, tuple[int, Handler]] = {}
        self._received: queue.Queue[tuple[str, bytes, Handler]] = queue.Queue(RECEIVE_QUEUE)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._handle_loop, name=f"mqtt-{client_id}", daemon=True)
        self._user_on_connect = on_connect
        self._user_on_disconnect = on_disconnect
        self._user_on_published = on_published
        self.connected = threading.Event()
        # Set once the broker has acknowledged every subscription of the current connection.
        self.subscribed = threading.Event()
        self._pending_subacks: set[int] = set()
        self._early_subacks: set[int] = set()
        self._unacked: set[int] = set()
        self._acked_early: set[int] = set()
        self._unacked_lock = threading.Lock()
        self.handler_errors = 0
        self.dropped_received = 0
        self.connects = 0
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
        """Subscribe now if connected, and again after every reconnect."""
        self._subscriptions[topic_filter] = (qos, handler)
        if self.connected.is_set():
            self._send_subscribe(topic_filter, qos)

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting until `stop()`."""
        self._worker.start()
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
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

    def stop(self, timeout: float = 5.0) -> None:
        """Let queued publishes reach the broker (while connected, up to `timeout`), then disconnect
        cleanly (no Will) and join the threads."""
        deadline = time.monotonic() + timeout
        while self._unacked and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stop.set()
        self._client.disconnect()
        self._client.loop_stop()
        self._worker.join(timeout)

    # paho's thread -------------------------------------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any = None) -> None:
        if reason.is_failure:
            log.error(
                "MQTT %s: broker %s refused the connection: %s", self.client_id, self.config.url, reason
            )
            return
        self.connects += 1
        log.info("MQTT %s: connected to %s", self.client_id, self.config.url)
        for topic_filter, (qos, _) in self._subscriptions.items():
            self._send_subscribe(topic_filter, qos)
        if not self._subscriptions:
            self.subscribed.set()
        self.connected.set()
        if self._user_on_connect is not None:
            self._safely(self._user_on_connect, "on_connect")

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: ReasonCode, _p: Any = None) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        with self._unacked_lock:
            self._pending_subacks.clear()
            self._early_subacks.clear()
            self._unacked.clear()  # paho resends or the caller's spool does; nothing to wait for
            self._acked_early.clear()
        if was_connected and not self._stop.is_set():
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
        for topic_filter, (_, handler) in self._subscriptions.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                try:
                    self._received.put_nowait((message.topic, bytes(message.payload), handler))
                except queue.Full:
                    self.dropped_received += 1
                    log.error(
                        "MQTT %s: receive queue full, dropped a message on %s", self.client_id, message.topic
                    )
                return

    # handler thread --------------------------------------------------------------------------

    def _handle_loop(self) -> None:
        while not self._stop.is_set():
            try:
                topic, payload, handler = self._received.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                handler(topic, payload)
            except Exception:
                self.handler_errors += 1
                log.exception("MQTT %s: handler failed on a message from %s", self.client_id, topic)

    def _safely(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception:
            log.exception("MQTT %s: %s callback failed", self.client_id, what)
