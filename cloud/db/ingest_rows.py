"""The rows the ingest writes besides observations: dead letters, thumbnails, and what the edge nodes
say of themselves, with the rules that keep a late, replayed or forged message from overwriting newer
truth. Each function is one transaction; the ingest writer calls them in arrival order.

- A birth replaces the node's current one only if it is newer: a later `at`, or a higher bdSeq (a
  node counts its connections; its clock may have been set back). A birth delivered again, retained
  from an earlier session or replayed changes nothing.
- A death ends the node's session only if it carries the current birth's bdSeq (a late Will of an
  earlier session does not).
- A node or camera status older than the node's current birth (by more than the allowed clock skew)
  belongs to an earlier session; a camera status older than the stored one is stale. A stored time
  further ahead of this clock than the allowed skew (written before times were bounded) does not
  outrank anything.
- A node that has said nothing (birth, status) for a while is `silent`, whatever its last birth
  claimed, until it speaks again.
- A node going online or offline (born, died, silent) is also an event of the prod flow, of no track.
- A camera's snapshot replaces the one kept unless that one was captured later (a late or redelivered
  older snapshot replaces nothing).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from cloud.db.models import CameraRow, CameraSnapshotRow, DeadLetterRow, EventRow, NodeRow, ThumbnailRow
from cloud.fse import EventKind
from shared.messages import (
    PROD_FLOW,
    CameraStatus,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    Snapshot,
    Thumbnail,
    death_applies,
)

# Dead letters keep at most this much of the offending payload.
DEAD_LETTER_BYTES = 64 * 1024
SILENT = "silent"


def add_dead_letter(engine: Engine, *, topic: str, payload: bytes, reason: str, at: datetime) -> None:
    """Keep a message that could not be used, with the reason."""
    with Session(engine) as session:
        session.add(
            DeadLetterRow(
                received_at=at,
                topic=_text(topic, 512),
                reason=_text(reason, 1000),
                size=len(payload),
                payload=payload[:DEAD_LETTER_BYTES],
            )
        )
        session.commit()


def store_thumbnail(engine: Engine, *, thumbnail: Thumbnail) -> None:
    """Keep a thumbnail for the API; one delivered again replaces itself."""
    meta = thumbnail.meta
    with Session(engine) as session:
        session.merge(
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


def store_snapshot(engine: Engine, *, snapshot: Snapshot, now: datetime) -> str:
    """Keep a snapshot as its camera's latest, unless a later one is kept; returns what it did."""
    meta = snapshot.meta
    with Session(engine) as session:
        row = session.get(CameraSnapshotRow, meta.camera_id)
        if row is not None and meta.captured_at < row.captured_at:
            return f"ignored snapshot {meta.snapshot_id}: {row.snapshot_id} was captured later"
        session.merge(
            CameraSnapshotRow(
                camera_id=meta.camera_id,
                node_id=meta.node_id,
                snapshot_id=str(meta.snapshot_id),
                captured_at=meta.captured_at,
                width=meta.width,
                height=meta.height,
                calibration_version=meta.calibration_version,
                requested_by=None if meta.requested_by is None else str(meta.requested_by),
                received_at=now,
                jpeg=snapshot.jpeg,
            )
        )
        session.commit()
        return f"snapshot {meta.snapshot_id} kept"


def apply_lifecycle(engine: Engine, *, message: NodeLifecycle, now: datetime) -> str:
    """Take a birth or death; returns what it did, for the log."""
    with Session(engine) as session:
        row = session.get(NodeRow, message.node_id)
        if message.state is NodeState.ONLINE:
            if row is not None and row.born_at is not None and message.at <= row.born_at:
                if message.at == row.born_at and message.bd_seq == row.bd_seq:
                    return "birth delivered again"
                if message.bd_seq <= row.bd_seq:
                    return f"ignored an older birth (bdSeq {message.bd_seq}, {row.bd_seq} now)"
            row = row or NodeRow(node_id=message.node_id, state="", bd_seq=0, changed_at=now)
            row.state, row.bd_seq, row.born_at, row.changed_at = "online", message.bd_seq, message.at, now
            row.software_version = message.software_version or row.software_version
            row.reason = ""
            done = f"born (bdSeq {message.bd_seq})"
            session.add(_node_event(message.node_id, EventKind.NODE_ONLINE, now, done))
        else:
            current = row.bd_seq if row is not None and row.state != NodeState.OFFLINE.value else None
            if row is None or not death_applies(current, message):
                return f"ignored a death of another session (bdSeq {message.bd_seq}, current {current})"
            row.state, row.changed_at, row.reason = NodeState.OFFLINE.value, now, message.reason or "died"
            done = f"died (bdSeq {message.bd_seq}): {row.reason}"
            session.add(_node_event(message.node_id, EventKind.NODE_OFFLINE, now, done))
        row.last_seen_at = now
        session.add(row)
        session.commit()
        return done


def apply_node_status(engine: Engine, *, message: NodeStatus, now: datetime, skew: timedelta) -> str:
    """Take a node's periodic status; returns what it did."""
    with Session(engine) as session:
        row = session.get(NodeRow, message.node_id)
        if row is not None and row.born_at is not None and message.at < row.born_at - skew:
            return "ignored a status of an earlier session"
        if row is None:  # the status came before any birth (retained messages arrive in any order)
            row = NodeRow(node_id=message.node_id, state="online", bd_seq=0, changed_at=now)
        if row.state == SILENT:
            row.state, row.changed_at, row.reason = "online", now, ""
            session.add(_node_event(message.node_id, EventKind.NODE_ONLINE, now, "heard again"))
        row.spool_depth = message.spool_depth
        row.cameras_online, row.cameras_total = message.cameras_online, message.cameras_total
        row.last_seen_at = now
        session.add(row)
        session.commit()
        return "status"


def apply_camera_status(engine: Engine, *, message: CameraStatus, now: datetime, skew: timedelta) -> str:
    """Take a camera's status; returns what it did."""
    with Session(engine) as session:
        node = session.get(NodeRow, message.node_id)
        if node is not None and node.born_at is not None and message.at < node.born_at - skew:
            return "ignored a camera status of an earlier session"
        row = session.get(CameraRow, message.camera_id) or CameraRow(
            camera_id=message.camera_id, node_id=message.node_id, state="", at=message.at
        )
        if message.at < row.at <= now + skew:
            return "ignored an older camera status"
        row.node_id, row.state, row.at = message.node_id, message.state.value, message.at
        row.fps_captured, row.fps_inferred = message.fps_captured, message.fps_inferred
        row.reconnects_last_hour, row.reason = message.reconnects_last_hour, message.reason
        session.add(row)
        session.commit()
        return "camera status"


def mark_silent(engine: Engine, *, heard_before: datetime, now: datetime) -> list[str]:
    """Nodes online but not heard from since `heard_before` become silent; returns their ids."""
    with Session(engine) as session:
        heard = func.coalesce(col(NodeRow.last_seen_at), col(NodeRow.changed_at))
        rows = session.exec(select(NodeRow).where(NodeRow.state == "online", heard < heard_before)).all()
        for row in rows:
            row.state, row.changed_at = SILENT, now
            row.reason = f"nothing heard since {row.last_seen_at.isoformat() if row.last_seen_at else '?'}"
            session.add(row)
            session.add(_node_event(row.node_id, EventKind.NODE_OFFLINE, now, f"silent: {row.reason}"))
        session.commit()
        return [row.node_id for row in rows]


def _node_event(node_id: str, kind: EventKind, at: datetime, detail: str) -> EventRow:
    return EventRow(flow=PROD_FLOW, at=at, kind=kind.value, track_id="", node_id=node_id, detail=detail[:300])


def _text(value: str, limit: int) -> str:
    """Text a database column takes: PostgreSQL refuses NUL characters."""
    return value.replace("\x00", "\\x00")[:limit]
