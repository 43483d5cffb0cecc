"""MQTT ingest: every payload is validated against the contract; a bad one goes to the dead-letter
table with its reason and handling carries on. Detections are stored in batches, idempotently (a
repeated node + sequence number is a duplicate and dropped), and fed to the live state estimator.

`handle()` runs on the MQTT adapter's handler thread; an owned flusher thread writes batches that
traffic alone would leave waiting. `stop()` flushes and joins it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import Session

from cloud.db.models import CameraRow, DeadLetterRow, NodeRow, ObservationRow
from cloud.fse import FacilityStateEstimator, Observation, SeenExtent
from shared.codec import decode_message
from shared.errors import ContractError
from shared.messages import (
    CameraState,
    CameraStatus,
    Detection,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    death_applies,
)

log = logging.getLogger(__name__)

# Rows per INSERT; large enough to amortise a round trip, small enough to keep latency low.
BATCH_ROWS = 500
FLUSH_INTERVAL_S = 0.2
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


class Ingest:
    """Validates, dead-letters, stores and feeds the FSE."""

    def __init__(self, engine: Engine, site: str, fse: FacilityStateEstimator | None = None) -> None:
        self.engine = engine
        self.site = site
        self.fse = fse
        self.counts = IngestCounts()
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="ingest-flush", daemon=True)
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._statement = (
            insert(ObservationRow)
            .on_conflict_do_nothing(index_elements=["node_id", "seq"])
            .returning(ObservationRow.__table__.c.id)  # type: ignore[attr-defined]
        )

    def start(self) -> None:
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self._flusher.join(5)
        self.flush()

    def handle(self, topic: str, payload: bytes) -> None:
        """Take one MQTT message."""
        self.counts.received += 1
        try:
            parsed, message = decode_message(topic, payload)
            if parsed.site != self.site:
                raise ContractError(f"site {parsed.site!r} is not this facility ({self.site!r})")
        except ContractError as exc:
            self._dead_letter(topic, payload, str(exc))
            return
        if isinstance(message, Detection):
            self._detection(message)
        elif isinstance(message, NodeLifecycle):
            self._lifecycle(message)
        elif isinstance(message, NodeStatus):
            self._node_status(message)
        elif isinstance(message, CameraStatus):
            self._camera_status(message)

    def _detection(self, d: Detection) -> None:
        row = {
            "observation_id": str(d.observation_id),
            "node_id": d.node_id,
            "camera_id": d.camera_id,
            "track_id": d.track_id,
            "flow": d.flow,
            "seq": d.seq,
            "model": f"{d.model.name}:{d.model.version}",
            "captured_at": d.captured_at,
            "received_at": datetime.now(UTC),
            "historical": d.historical,
            "camera_state": d.camera.state.value,
            "view_start_m": d.view.start_m,
            "view_end_m": d.view.end_m,
            "extents": [e.model_dump() for e in d.extents],
        }
        with self._lock:
            self._pending.append(row)
            full = len(self._pending) >= BATCH_ROWS
        if full:
            self.flush()
        if self.fse is not None and d.camera_id in self.fse.facility.cameras:
            observation = Observation(
                d.camera_id,
                d.captured_at,
                tuple(
                    SeenExtent(e.start_m, e.end_m, e.start_beyond_view, e.end_beyond_view, e.confidence)
                    for e in d.extents
                ),
                online=d.camera.state is CameraState.ONLINE,
            )
            if not self.fse.observe(observation):
                self.counts.stale += 1

    def flush(self) -> None:
        """Write the pending detections; repeated (node, seq) pairs are dropped by the database."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return
        try:
            inserted = self._insert_rows(rows)
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
        except SQLAlchemyError:
            with self._lock:  # the database is unreachable: keep the rows for the next flush
                self._pending[:0] = rows
            raise
        self.counts.stored += inserted
        self.counts.duplicates += len(rows) - inserted

    def _insert_rows(self, rows: list[dict[str, Any]]) -> int:
        # One compiled statement with many parameter sets: SQLAlchemy batches it ("insertmanyvalues")
        # and caches the compilation, which a fresh multi-row VALUES statement per batch would not.
        with self.engine.begin() as connection:
            return len(connection.execute(self._statement, rows).all())

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
            except Exception:
                log.exception("ingest: writing detections failed; they stay queued for the next attempt")

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
            if message.at < row.at.replace(tzinfo=row.at.tzinfo or UTC):
                return  # an older retained status
            row.node_id, row.state, row.at = message.node_id, message.state.value, message.at
            row.fps_captured, row.fps_inferred = message.fps_captured, message.fps_inferred
            row.reconnects_last_hour, row.reason = message.reconnects_last_hour, message.reason
            session.add(row)
            session.commit()
