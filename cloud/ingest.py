"""MQTT ingest: every payload is validated against the contract; a bad one goes to the dead-letter
table with its reason and handling carries on. Detections are stored in batches, idempotently (a
repeated node + sequence number is a duplicate and dropped), and fed to the live state estimator.

Delivery is at least once, end to end: each message is acknowledged to the broker only after what it
carries is committed, so a crash or a database outage loses nothing (the broker redelivers, the
unique (node, seq) key drops what was already stored). Acknowledgements go out in arrival order.

`handle()` runs on the MQTT adapter's handler thread, which calls `submit()` whenever its queue runs
empty: batches grow with the load (group commit) and a quiet stream is written at once. An owned
writer thread does every database write in arrival order, overlapping them with decoding, and
retries a failed one until the database is back. `stop()` flushes and joins it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import Session

from cloud.db.bulk import insert_observations
from cloud.db.models import CameraRow, DeadLetterRow, NodeRow, ThumbnailRow
from cloud.fse import Observation, SeenExtent
from shared.codec import decode_message
from shared.errors import ContractError
from shared.messages import (
    CameraState,
    CameraStatus,
    Detection,
    LocoExtent,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    Recognition,
    Thumbnail,
    death_applies,
)
from shared.mqtt import Ack

log = logging.getLogger(__name__)

# Rows per write at most; a burst beyond it is written in several commits.
BATCH_ROWS = 1000
# Writes waiting for the writer thread; beyond this the handler waits (and so, in turn, the broker).
QUEUED_WRITES = 4
# A write that failed (database unreachable) is retried this often, in order, until it succeeds.
RETRY_INTERVAL_S = 1.0
# Serialises a detection's extents in one call, ready for the JSON column.
_EXTENTS_JSON = TypeAdapter(list[LocoExtent])
# Dead letters keep at most this much of the offending payload.
DEAD_LETTER_BYTES = 64 * 1024


@dataclass
class IngestCounts:
    """What the ingest did since start."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    stale: int = 0
    unfused: int = 0  # stored, but no estimator runs the detection's flow (or knows its camera)
    write_failures: int = 0
    # Seconds from capture to arrival of the latest live detection (edge + broker + network delay).
    lag_s: float = 0.0


@dataclass
class _Write:
    """Detections to insert, then another write that commits by itself, then the acknowledgements."""

    rows: list[dict[str, Any]]
    acks: list[Ack]
    then: Callable[[], None] | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Ingest:
    """Validates, dead-letters and feeds the FSE on the caller's thread; an owned writer thread stores
    in arrival order and acknowledges what it committed."""

    def __init__(
        self,
        engine: Engine,
        site: str,
        observe: Callable[[str, Observation], bool | None] | None = None,
        on_recognition: Callable[[Recognition], object] | None = None,
    ) -> None:
        self.engine = engine
        self.site = site
        self.observe = observe
        self.on_recognition = on_recognition
        self.counts = IngestCounts()
        self._pending: list[dict[str, Any]] = []
        self._acks: list[Ack] = []
        self._lock = threading.Lock()
        self._writes: queue.Queue[_Write] = queue.Queue(QUEUED_WRITES)
        self._stop = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)

    def start(self) -> None:
        self._writer.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what was received (while the database answers, up to `timeout`), then stop."""
        if not self.flush(timeout):
            log.warning("ingest: stopped with writes pending; the broker redelivers them")
        self._stop.set()
        self._writer.join(timeout)

    def handle(self, topic: str, payload: bytes, ack: Ack) -> None:
        """Take one MQTT message; `ack` is called once what it carries is committed."""
        self.counts.received += 1
        try:
            parsed, message = decode_message(topic, payload)
            if parsed.site != self.site:
                raise ContractError(f"site {parsed.site!r} is not this facility ({self.site!r})")
        except ContractError as exc:
            reason = str(exc)
            self._submit(ack, lambda: self._dead_letter(topic, payload, reason))
            return
        if isinstance(message, Detection):
            self._detection(message, ack)
        elif isinstance(message, NodeLifecycle):
            self._submit(ack, lambda: self._lifecycle(message))
        elif isinstance(message, NodeStatus):
            self._submit(ack, lambda: self._node_status(message))
        elif isinstance(message, CameraStatus):
            self._submit(ack, lambda: self._camera_status(message))
        elif isinstance(message, Thumbnail):
            self._submit(ack, lambda: self._thumbnail(message))
        elif isinstance(message, Recognition):
            if self.on_recognition is not None:
                self.on_recognition(message)
            self._submit(ack, None)

    def _detection(self, d: Detection, ack: Ack) -> None:
        received_at = datetime.now(UTC)
        if not d.historical:
            self.counts.lag_s = (received_at - d.captured_at).total_seconds()
        row = {
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
        with self._lock:
            self._pending.append(row)
            self._acks.append(ack)
            full = len(self._pending) >= BATCH_ROWS
        if full:
            self.submit()
        if self.observe is not None:
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

    @property
    def queued_writes(self) -> int:
        """Writes waiting for the database (more than a few means it is slow or away)."""
        return self._writes.qsize()

    def submit(self) -> None:
        """Hand the detections gathered so far to the writer (waits while it is QUEUED_WRITES behind)."""
        self._submit(None, None)

    def _submit(
        self, ack: Ack | None, then: Callable[[], None] | None, timeout: float | None = None
    ) -> _Write | None:
        with self._lock:
            rows, self._pending = self._pending, []
            acks, self._acks = self._acks, []
        if ack is not None:
            acks.append(ack)
        if not rows and not acks and then is None:
            return None
        write = _Write(rows, acks, then)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._writes.put(write, timeout=0.5)
                return write
            except queue.Full:
                if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                    # Neither written nor acknowledged: the broker hands these messages over again.
                    log.warning("ingest: the database is behind; %d messages left to the broker", len(acks))
                    return None

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything received so far and wait for it; False if not done within `timeout`."""
        marker = self._submit(None, lambda: None, timeout)
        return marker is not None and marker.done.wait(timeout)

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            try:
                write = self._writes.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self._apply(write):
                if self._stop.wait(RETRY_INTERVAL_S):
                    return  # unacknowledged: the broker redelivers after our next connect

    def _apply(self, write: _Write) -> bool:
        try:
            if write.rows:
                inserted = self._insert_all(write.rows)
                self.counts.stored += inserted
                self.counts.duplicates += len(write.rows) - inserted
                write.rows = []
            if write.then is not None:
                write.then()
        except SQLAlchemyError as exc:
            self.counts.write_failures += 1
            log.error("ingest: database write failed (%s); retrying in %.0f s", exc, RETRY_INTERVAL_S)
            return False
        for ack in write.acks:
            ack()
        write.done.set()
        return True

    def _insert_all(self, rows: list[dict[str, Any]]) -> int:
        try:
            return self._insert_rows(rows)
        except (DataError, IntegrityError):
            # One bad row must not cost the others: insert one by one, dead-letter what fails.
            inserted = 0
            for row in rows:
                try:
                    inserted += self._insert_rows([row])
                except (DataError, IntegrityError) as exc:
                    self._dead_letter(
                        f"detection {row['node_id']}#{row['seq']}", b"", f"database refused it: {exc.orig}"
                    )
            return inserted

    def _insert_rows(self, rows: list[dict[str, Any]]) -> int:
        with self.engine.begin() as connection:
            return insert_observations(connection, rows)

    def _dead_letter(self, topic: str, payload: bytes, reason: str) -> None:
        self.counts.dead_letters += 1
        log.warning("ingest: dead letter from %s: %s", topic, reason)
        with Session(self.engine) as session:
            session.add(
                DeadLetterRow(
                    received_at=datetime.now(UTC),
                    topic=topic[:512],
                    reason=reason[:1000],
                    size=len(payload),
                    payload=payload[:DEAD_LETTER_BYTES],
                )
            )
            session.commit()

    def _thumbnail(self, thumbnail: Thumbnail) -> None:
        meta = thumbnail.meta
        with Session(self.engine) as session:
            session.merge(  # a redelivered thumbnail replaces itself
                ThumbnailRow(
                    thumbnail_id=str(meta.thumbnail_id),
                    captured_at=meta.captured_at,
                    node_id=meta.node_id,
                    camera_id=meta.camera_id,
                    track_id=meta.track_id,
                    flow=meta.flow,
                    span_start_m=meta.span.start_m,
                    span_end_m=meta.span.end_m,
                    jpeg=thumbnail.jpeg,
                )
            )
            session.commit()

    def _lifecycle(self, message: NodeLifecycle) -> None:
        with Session(self.engine) as session:
            row = session.get(NodeRow, message.node_id)
            if message.state is NodeState.OFFLINE:
                current = row.bd_seq if row is not None and row.state == NodeState.ONLINE.value else None
                if not death_applies(current, message):
                    log.info(
                        "ingest: ignored a late death of %s (bdSeq %d, current %s)",
                        message.node_id,
                        message.bd_seq,
                        current,
                    )
                    return
            row = row or NodeRow(node_id=message.node_id, state="", bd_seq=0, changed_at=message.at)
            row.state, row.bd_seq, row.changed_at = message.state.value, message.bd_seq, message.at
            row.software_version = message.software_version or row.software_version
            session.add(row)
            session.commit()

    def _node_status(self, message: NodeStatus) -> None:
        with Session(self.engine) as session:
            row = session.get(NodeRow, message.node_id)
            if row is None:
                row = NodeRow(
                    node_id=message.node_id, state=NodeState.ONLINE.value, bd_seq=0, changed_at=message.at
                )
            row.spool_depth = message.spool_depth
            row.cameras_online, row.cameras_total = message.cameras_online, message.cameras_total
            session.add(row)
            session.commit()

    def _camera_status(self, message: CameraStatus) -> None:
        with Session(self.engine) as session:
            row = session.get(CameraRow, message.camera_id) or CameraRow(
                camera_id=message.camera_id, node_id=message.node_id, state="", at=message.at
            )
            if message.at < row.at:
                return  # an older retained status
            row.node_id, row.state, row.at = message.node_id, message.state.value, message.at
            row.fps_captured, row.fps_inferred = message.fps_captured, message.fps_inferred
            row.reconnects_last_hour, row.reason = message.reconnects_last_hour, message.reason
            session.add(row)
            session.commit()
