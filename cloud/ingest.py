"""MQTT ingest: every message the cloud is subscribed to is handled and acknowledged, whatever it holds.

Each payload is validated against the contract, then against the layout and this clock
(`cloud.admission`); one that fails goes to the dead-letter table with its reason and handling
carries on. A detection is believed only about what its camera can see, is fused into the live
estimators at once (the live state never waits for the database) and stored, idempotently: a
repeated (flow, node, seq) is neither stored nor fused again (`cloud.dedupe`), and one that reuses a
number for other content is a dead letter, so live state and history agree.

Delivery is at least once, end to end: each message is acknowledged to the broker only after what it
carries is committed (`cloud.ingest_writer`), so a crash or a database outage loses nothing (the
broker redelivers, the unique key drops what was already stored). A message the database refuses
becomes a dead letter on its own; nothing stops the writer. `handle()` never raises: a bug costs the
one message (dead-lettered with the error), never the ingest.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

from pydantic import TypeAdapter
from sqlalchemy import Engine

from cloud.admission import admit_detection, camera_of, known_node, not_ahead
from cloud.db.ingest_rows import (
    add_dead_letter,
    apply_camera_status,
    apply_lifecycle,
    apply_node_status,
    store_snapshot,
    store_thumbnail,
)
from cloud.dedupe import Seen, SeenSeqs
from cloud.flows import Observe
from cloud.fse import Observation, SeenExtent
from cloud.ingest_writer import Entry, IngestWriter, WriterCounts
from shared.codec import decode_message
from shared.errors import ContractError
from shared.layout import Facility
from shared.messages import (
    CameraState,
    CameraStatus,
    CommandAck,
    CommandRequest,
    Detection,
    LocoExtent,
    NodeLifecycle,
    NodeStatus,
    Recognition,
    Snapshot,
    Thumbnail,
)
from shared.mqtt import Ack
from shared.topics import TopicKind, subscription

log = logging.getLogger(__name__)

# How far ahead of this clock a message's time may be (edge clocks run on NTP; beyond this it is a
# broken clock or a forgery, and would outrank every real message after it).
MAX_CLOCK_SKEW_S = 120.0
# Serialises a detection's extents in one call, ready for the JSON column.
_EXTENTS_JSON = TypeAdapter(list[LocoExtent])
# What the cloud consumes: its own commands to the nodes (…/cmd) are not among them.
CONSUMED = (
    TopicKind.DETECTION,
    TopicKind.THUMBNAIL,
    TopicKind.RECOGNITION,
    TopicKind.NODE_STATE,
    TopicKind.NODE_STATUS,
    TopicKind.CAMERA_STATUS,
    TopicKind.SNAPSHOT,
    TopicKind.COMMAND_ACK,
)
# The messages only written as they arrive (nothing fused), each once the layout admits it.
Written = Thumbnail | Snapshot | Recognition | NodeLifecycle | NodeStatus | CameraStatus


def subscriptions(site: str) -> list[str]:
    """The topic filters of everything the ingest consumes at `site`."""
    return [subscription(kind, site) for kind in CONSUMED]


@dataclass
class IngestCounts(WriterCounts):
    """What the ingest (and its writer) did since start."""

    received: int = 0
    dead_letters: int = 0
    redelivered: int = 0  # detections delivered again: not fused again (nor stored: duplicates)
    stale: int = 0
    unfused: int = 0  # stored, but no estimator runs the detection's flow
    command_acks: int = 0
    handler_errors: int = 0
    # Seconds from capture to arrival of the latest live detection (edge + broker + network delay).
    lag_s: float = 0.0


class Ingest:
    """Validates, admits, dead-letters and fuses on the caller's thread (the MQTT handler); the owned
    writer stores in arrival order and acknowledges what it committed."""

    def __init__(
        self,
        engine: Engine,
        facility: Facility,
        observe: Observe | None = None,
        on_recognition: Callable[[Recognition], object] | None = None,
        max_clock_skew_s: float = MAX_CLOCK_SKEW_S,
    ) -> None:
        self.engine = engine
        # Swapped whole when the layout is replaced; each message reads it once.
        self.facility = facility
        self.observe = observe
        self.on_recognition = on_recognition
        self.skew = timedelta(seconds=max_clock_skew_s)
        self.counts = IngestCounts()
        self.seen = SeenSeqs()
        self.writer = IngestWriter(engine, self._write_dead_letter, self.counts)

    def start(self) -> None:
        """Start the writer's thread."""
        self.writer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what was received (while the database answers, up to `timeout`), then stop."""
        if not self.writer.flush(timeout):
            log.warning("ingest: stopped with %d writes pending; the broker redelivers them", self.pending)
        self.writer.stop(timeout)

    @property
    def pending(self) -> int:
        """Messages taken and not yet committed (more than a few means the database is slow or away)."""
        return self.writer.pending

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything received so far and wait for it; False if not done within `timeout`."""
        return self.writer.flush(timeout)

    def handle(self, topic: str, payload: bytes, ack: Ack) -> None:
        """Take one MQTT message; `ack` is called once what it carries is committed."""
        self.counts.received += 1
        try:
            self._handle(topic, payload, ack)
        except ContractError as exc:
            self.reject(topic, payload, str(exc), ack)
        except Exception as exc:  # a bug must cost this one message, never the ingest
            self.counts.handler_errors += 1
            log.exception("ingest: failed on a message from %s", topic)
            self.reject(topic, payload, f"the ingest failed on it: {type(exc).__name__}: {exc}", ack)

    def reject(self, topic: str, payload: bytes, reason: str, ack: Ack) -> None:
        """Dead-letter a message with the reason (acknowledged once the dead letter is written)."""
        self.counts.dead_letters += 1
        log.warning("ingest: dead letter from %s: %s", topic, reason)
        self.writer.put(
            Entry(
                topic, payload, ack, write=functools.partial(self._write_dead_letter, topic, payload, reason)
            )
        )

    def _handle(self, topic: str, payload: bytes, ack: Ack) -> None:
        parsed, message = decode_message(topic, payload)
        facility = self.facility
        if parsed.site != facility.site:
            raise ContractError(f"site {parsed.site!r} is not this facility ({facility.site!r})")
        now = datetime.now(UTC)
        # Over every message of the contract: one added to it and not handled here fails mypy (at
        # assert_never) rather than reaching the cloud as a dead letter.
        match message:
            case Detection():
                self._detection(topic, payload, admit_detection(facility, message, now, self.skew), now, ack)
            case CommandAck():
                known_node(facility, message.node_id)
                self._command_ack(message)
                ack()
            case Thumbnail() | Snapshot() | Recognition() | NodeLifecycle() | NodeStatus() | CameraStatus():
                write = self._admitted_write(facility, message, now)
                if write is None:
                    ack()
                else:
                    self.writer.put(Entry(topic, payload, ack, write=write))
            case CommandRequest():
                # It is for edge nodes, and the cloud does not subscribe to them.
                raise ContractError(f"a {type(message).__name__} is not for the cloud")
            case _:
                assert_never(message)

    def _admitted_write(
        self, facility: Facility, message: Written, now: datetime
    ) -> Callable[[], object] | None:
        """What to write for a message that is only written (not fused), once the layout admits it."""
        engine, skew = self.engine, self.skew
        match message:
            case Thumbnail():
                meta = message.meta
                camera_of(facility, meta.node_id, meta.camera_id, meta.track_id)
                not_ahead(meta.captured_at, now, skew, "captured_at")
                return functools.partial(store_thumbnail, engine, thumbnail=message)
            case Snapshot():
                shown = message.meta
                camera_of(facility, shown.node_id, shown.camera_id)
                not_ahead(shown.captured_at, now, skew, "captured_at")
                return functools.partial(self._snapshot, message, now)
            case Recognition():
                camera_of(facility, message.node_id, message.camera_id, message.track_id)
                not_ahead(message.captured_at, now, skew, "captured_at")
                # Counted and persisted before the acknowledgement.
                return (
                    None if self.on_recognition is None else functools.partial(self.on_recognition, message)
                )
            case NodeLifecycle():
                known_node(facility, message.node_id)
                not_ahead(message.at, now, skew, "at")
                return functools.partial(self._lifecycle, message, now)
            case NodeStatus():
                known_node(facility, message.node_id)
                not_ahead(message.at, now, skew, "at")
                return functools.partial(apply_node_status, engine, message=message, now=now, skew=skew)
            case CameraStatus():
                camera_of(facility, message.node_id, message.camera_id)
                not_ahead(message.at, now, skew, "at")
                if message.last_frame_at is not None:
                    not_ahead(message.last_frame_at, now, skew, "last_frame_at")
                return functools.partial(apply_camera_status, engine, message=message, now=now, skew=skew)
            case _:
                assert_never(message)

    def _detection(self, topic: str, payload: bytes, d: Detection, now: datetime, ack: Ack) -> None:
        seen = self.seen.check(d.flow, d.node_id, d.seq, d.observation_id)
        if seen is Seen.CONFLICT:
            first = self.seen.first(d.flow, d.node_id, d.seq)
            raise ContractError(
                f"seq {d.seq} of {d.node_id} in flow {d.flow} already carried observation {first}; "
                "the first one counts"
            )
        if seen is Seen.AGAIN:
            self.counts.redelivered += 1
        else:
            self._fuse(d, now)
        self.writer.put(Entry(topic, payload, ack, row=_row(d, now)))

    def _fuse(self, d: Detection, now: datetime) -> None:
        if not d.historical:
            self.counts.lag_s = (now - d.captured_at).total_seconds()
        if self.observe is None:
            return
        observation = Observation(
            d.camera_id,
            d.captured_at,
            tuple(
                SeenExtent(e.start_m, e.end_m, e.start_beyond_view, e.end_beyond_view, e.confidence)
                for e in d.extents
            ),
            online=d.camera.state is CameraState.ONLINE,
        )
        fused = self.observe(d.flow, observation)
        if fused is None:
            self.counts.unfused += 1
        elif not fused:
            self.counts.stale += 1

    def _command_ack(self, message: CommandAck) -> None:
        self.counts.command_acks += 1
        verdict = "accepted" if message.accepted else f"rejected ({message.reason})"
        log.info("ingest: node %s %s command %s", message.node_id, verdict, message.command_id)

    def _snapshot(self, message: Snapshot, now: datetime) -> None:
        done = store_snapshot(self.engine, snapshot=message, now=now)
        log.info("ingest: camera %s: %s", message.meta.camera_id, done)

    def _lifecycle(self, message: NodeLifecycle, now: datetime) -> None:
        done = apply_lifecycle(self.engine, message=message, now=now)
        log.info("ingest: node %s %s", message.node_id, done)

    def _write_dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        add_dead_letter(self.engine, topic=topic, payload=payload, reason=reason, at=datetime.now(UTC))


def _row(d: Detection, received_at: datetime) -> dict[str, Any]:
    return {
        "observation_id": str(d.observation_id),
        "node_id": d.node_id,
        "camera_id": d.camera_id,
        "track_id": d.track_id,
        "flow": d.flow,
        "seq": d.seq,
        "model": f"{d.model.name}:{d.model.version}",
        "captured_at": d.captured_at,
        "received_at": received_at,
        "historical": d.historical,
        "camera_state": d.camera.state.value,
        "view_start_m": d.view.start_m,
        "view_end_m": d.view.end_m,
        "extents": _EXTENTS_JSON.dump_json(d.extents).decode(),
    }
