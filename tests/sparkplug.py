"""Sparkplug B as an outside SCADA sees it, for the tests: every message under `spBv1.0/` recorded off a
real broker with the QoS and retain flag it came with, payloads decoded (and commands encoded) by
Eclipse Tahu's JavaScript library (tests/sparkplug_decoder, installed by `make install` with npm), not by
depotwatch's own protobuf module, and a primary host's STATE published as plain JSON."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CODEC = Path(__file__).resolve().parent / "sparkplug_decoder"


class TahuCodec:
    """Eclipse Tahu's Sparkplug B payload codec (sparkplug-payload on npm), in a Node.js process."""

    def __init__(self) -> None:
        if not (CODEC / "node_modules" / "sparkplug-payload").is_dir():
            raise RuntimeError(
                f"{CODEC}/node_modules is missing: `make install` runs `npm ci` there (needs Node.js and npm)"
            )
        self._process = subprocess.Popen(
            ["node", str(CODEC / "codec.js")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            answer: dict[str, Any] = json.loads(self._process.stdout.readline())
        if "error" in answer:
            raise ValueError(f"Tahu could not: {answer['error']}")
        return answer

    def decode(self, payload: bytes) -> dict[str, Any]:
        """The payload as Tahu decodes it: timestamp, seq, metrics [{name, type, value}]."""
        decoded: dict[str, Any] = self._ask({"decode": base64.b64encode(payload).decode()})["payload"]
        return decoded

    def encode(self, payload: dict[str, Any]) -> bytes:
        """A payload Tahu encodes from {timestamp, seq, metrics: [{name, type, value}]}."""
        return base64.b64decode(self._ask({"encode": payload})["base64"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(5)


@dataclass(frozen=True)
class Received:
    """One message as the broker delivered it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool

    @property
    def kind(self) -> str:
        """NBIRTH, DDATA, STATE, ..."""
        return self.topic.split("/")[2] if self.topic.count("/") >= 3 else self.topic.split("/")[1]


def _client(url: str, name: str) -> mqtt.Client:
    parts = urlsplit(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
    return client


class SparkplugRecorder:
    """Subscribes to `spBv1.0/#` (QoS 1, so each message keeps the QoS it was published with) and
    records what arrives; `decoded(kind)` reads payloads with Tahu."""

    def __init__(self, url: str, codec: TahuCodec, topic_filter: str = "spBv1.0/#") -> None:
        self.codec = codec
        self._url = url
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = _client(url, "scada")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.subscribe(topic_filter, qos=1)
        self._client.loop_start()
        assert self._subscribed.wait(5), "the recorder's subscription was not acknowledged"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, message.qos, message.retain))

    def of(self, kind: str, node: str | None = None) -> list[Received]:
        """The messages of a kind (NBIRTH, DDATA, ...), of one edge node if given."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m.kind == kind and (node is None or m.topic.split("/")[3:4] == [node])
            ]

    def keeps_publish_qos(self) -> bool:
        """Whether the broker delivers a QoS 0 publish at QoS 0 to this QoS 1 subscription, as MQTT
        says (min of the two): Mosquitto does; amqtt 0.12 delivers at the subscription's QoS, so
        there the QoS a message was published with cannot be seen."""
        topic = f"spBv1.0/probe-{uuid.uuid4().hex[:6]}/NDATA/probe"
        client = _client(self._url, "probe")
        client.loop_start()
        client.publish(topic, b"", qos=0)
        deadline = time.monotonic() + 5
        while not (got := [m for m in self.messages if m.topic == topic]) and time.monotonic() < deadline:
            time.sleep(0.02)
        client.loop_stop()
        client.disconnect()
        assert got, "the QoS probe never arrived"
        return got[0].qos == 0

    def sequence(self, node: str) -> list[tuple[Received, dict[str, Any]]]:
        """What one edge node published, in arrival order, decoded (commands to it left out)."""
        with self._lock:
            mine = [
                m
                for m in self.messages
                if m.kind not in ("STATE", "NCMD", "DCMD") and m.topic.split("/")[3] == node
            ]
        return [(m, self.codec.decode(m.payload)) for m in mine]

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def metric_values(decoded: dict[str, Any]) -> dict[str, Any]:
    """A decoded payload's metrics by name."""
    return {m["name"]: m["value"] for m in decoded.get("metrics", [])}


def metric_types(decoded: dict[str, Any]) -> dict[str, str]:
    """A decoded payload's metrics' datatypes by name."""
    return {m["name"]: m["type"] for m in decoded.get("metrics", [])}


def publish_state(url: str, host_id: str, online: bool, timestamp_ms: int) -> None:
    """A primary host's STATE, retained at QoS 1, as any Sparkplug 3.0 host publishes it."""
    client = _client(url, "host")
    client.loop_start()
    info = client.publish(
        f"spBv1.0/STATE/{host_id}",
        json.dumps({"online": online, "timestamp": timestamp_ms}),
        qos=1,
        retain=True,
    )
    info.wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def publish_raw(url: str, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
    """One message, acknowledged by the broker before this returns."""
    client = _client(url, "pub")
    client.loop_start()
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def retained(url: str, topic: str, wait_s: float = 1.0) -> bytes | None:
    """The message the broker retains on a topic, as a new subscriber gets it (None if none)."""
    got: list[bytes] = []
    client = _client(url, "late")
    # By topic too: amqtt 0.12 has been seen handing this subscription another topic's retained message.
    client.on_message = lambda _c, _u, m: got.append(m.payload) if m.retain and m.topic == topic else None
    client.subscribe(topic, qos=1)
    client.loop_start()
    deadline = time.monotonic() + wait_s
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


def now_ms() -> int:
    return int(time.time() * 1000)
