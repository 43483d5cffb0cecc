"""Recording a flow's MQTT traffic (detections and thumbnails) to a compact file, and replaying it
into a named flow at 1× (or any speed) or as fast as the broker takes it.

A recording is gzip: one JSON header line, then per message its arrival offset (seconds since the
recording began), topic and payload, length-prefixed. Replayed messages are rewritten for the target
flow: the flow in topic and payload, and observation and thumbnail ids derived from the originals
(uuid5), so a replay never collides with the data it was recorded from and replaying twice is
idempotent at the cloud's ingest.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from shared.codec import decode_message, encode
from shared.errors import DepotwatchError
from shared.messages import Detection, Message, Thumbnail
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import TopicKind, parse_topic, subscription

log = logging.getLogger(__name__)

FORMAT = "depotwatch-recording"
VERSION = 1
_RECORD = struct.Struct("<dHI")  # arrival offset, topic length, payload length
# Replay as fast as possible keeps at most this many publishes unacknowledged by the broker.
MAX_IN_FLIGHT = 500
# A replay gives up when the broker acknowledges nothing (or stays away) this long.
ACK_TIMEOUT_S = 60.0
RECORDED_KINDS = (TopicKind.DETECTION, TopicKind.THUMBNAIL)


class RecordingError(DepotwatchError):
    """A recording cannot be written or read."""


@dataclasses.dataclass(frozen=True)
class Recorded:
    """One message as it arrived."""

    offset_s: float
    topic: str
    payload: bytes


class Recorder:
    """Subscribes to a flow's detections and thumbnails and appends each to the file as it arrives."""

    def __init__(self, broker: BrokerConfig, site: str, flow: str, path: Path) -> None:
        self.path = path
        self.counts = dict.fromkeys(RECORDED_KINDS, 0)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        try:
            self._file = gzip.GzipFile(path, "wb", compresslevel=6)
        except OSError as exc:
            raise RecordingError(f"cannot write recording {path}: {exc}") from exc
        header = {"format": FORMAT, "version": VERSION, "site": site, "flow": flow}
        self._file.write(json.dumps(header | {"started_at": datetime.now(UTC).isoformat()}).encode() + b"\n")
        self.link = MqttConnection(broker, f"depotwatch-recorder-{uuid.uuid4().hex[:8]}")
        for kind in RECORDED_KINDS:
            self.link.subscribe(subscription(kind, site, flow=flow), self._on_message)

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; raises RecordingError if the broker cannot be reached in time."""
        self.link.start()
        if not (self.link.wait_connected(timeout) and self.link.wait_subscribed(timeout)):
            self.link.stop()
            raise RecordingError(f"cannot subscribe at {self.link.config.url} within {timeout:.0f} s")
        self._started = time.monotonic()

    def _on_message(self, topic: str, payload: bytes) -> None:
        encoded = topic.encode()
        with self._lock:
            self._file.write(_RECORD.pack(time.monotonic() - self._started, len(encoded), len(payload)))
            self._file.write(encoded)
            self._file.write(payload)
            self.counts[parse_topic(topic).kind] += 1

    def stop(self) -> None:
        """Stop listening and close the file (complete and readable from here on)."""
        self.link.stop()
        with self._lock:
            self._file.close()
        log.info("recorded %s to %s", self.summary(), self.path)

    def summary(self) -> str:
        """What was recorded, e.g. '1520 det, 31 thumb'."""
        return ", ".join(f"{count} {kind.value}" for kind, count in self.counts.items())


def read_header(path: Path) -> dict[str, str]:
    """The recording's header: format, version, site, flow, started_at."""
    with _open(path) as file:
        return _header(file, path)


def read_recording(path: Path) -> Iterator[Recorded]:
    """The messages of a recording in arrival order."""
    with _open(path) as file:
        _header(file, path)
        while head := file.read(_RECORD.size):
            if len(head) < _RECORD.size:
                raise RecordingError(f"{path}: ends inside a record (was the recorder killed?)")
            offset, topic_len, payload_len = _RECORD.unpack(head)
            body = file.read(topic_len + payload_len)
            if len(body) < topic_len + payload_len:
                raise RecordingError(f"{path}: ends inside a record (was the recorder killed?)")
            yield Recorded(offset, body[:topic_len].decode(), body[topic_len:])


def retarget(topic: str, payload: bytes, flow: str) -> tuple[str, bytes]:
    """A recorded message as it would be in `flow`: flow and ids rewritten."""
    parsed, message = decode_message(topic, payload)
    return str(dataclasses.replace(parsed, flow=flow)), encode(_in_flow(message, flow))


def _in_flow(message: Message, flow: str) -> Message:
    if isinstance(message, Detection):
        return message.model_copy(
            update={"flow": flow, "observation_id": _derived(message.observation_id, flow)}
        )
    if isinstance(message, Thumbnail):
        meta = message.meta.model_copy(
            update={
                "flow": flow,
                "observation_id": _derived(message.meta.observation_id, flow),
                "thumbnail_id": _derived(message.meta.thumbnail_id, flow),
            }
        )
        return message.model_copy(update={"meta": meta})
    raise RecordingError(f"a recording holds detections and thumbnails, not {type(message).__name__}")


def _derived(original: uuid.UUID, flow: str) -> uuid.UUID:
    return uuid.uuid5(original, flow)


def replay(path: Path, broker: BrokerConfig, flow: str, speed: float | None = 1.0) -> int:
    """Publish a recording into `flow`: at `speed` times the recorded pace, or as fast as the broker
    acknowledges when `speed` is None. Returns the number of messages published (all acknowledged)."""
    in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    link = MqttConnection(
        broker, f"depotwatch-replay-{uuid.uuid4().hex[:8]}", on_published=lambda _mid: in_flight.release()
    )
    link.start()
    if not link.wait_connected(10):
        link.stop()
        raise RecordingError(f"cannot reach the broker at {broker.url}")
    started, sent = time.monotonic(), 0
    try:
        for record in read_recording(path):
            topic, payload = retarget(record.topic, record.payload, flow)
            if speed is not None:
                delay = started + record.offset_s / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            _acquire(in_flight, broker)
            if not link.wait_connected(ACK_TIMEOUT_S):
                raise RecordingError(f"lost the broker at {broker.url} and it did not come back")
            # Published once: paho keeps a QoS 1 message it could not send and sends it on reconnect.
            link.publish(topic, payload)
            sent += 1
        for _ in range(MAX_IN_FLIGHT):  # every publish acknowledged
            _acquire(in_flight, broker)
    finally:
        link.stop()
    log.info("replayed %d messages of %s into flow %s", sent, path, flow)
    return sent


def _acquire(in_flight: threading.BoundedSemaphore, broker: BrokerConfig) -> None:
    if not in_flight.acquire(timeout=ACK_TIMEOUT_S):
        raise RecordingError(f"the broker at {broker.url} acknowledged nothing for {ACK_TIMEOUT_S:.0f} s")


def _open(path: Path) -> gzip.GzipFile:
    try:
        return gzip.GzipFile(path, "rb")
    except OSError as exc:
        raise RecordingError(f"cannot read recording {path}: {exc}") from exc


def _header(file: gzip.GzipFile, path: Path) -> dict[str, str]:
    try:
        header = json.loads(file.readline())
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path} is not a depotwatch recording: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise RecordingError(f"{path} is not a depotwatch recording of version {VERSION}")
    return header
