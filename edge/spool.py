"""Store-and-forward: every outgoing message is written here first and deleted only once the broker
has acknowledged it, so a broker or network outage loses nothing and a restart resumes the backlog.

SQLite in WAL mode, one connection behind a lock. The spool is bounded in bytes: when full it drops the
oldest shadow-flow detections first, then thumbnails, then detections, and counts each drop. It also keeps the
node's counters that must survive restarts: the detection sequence number and the birth sequence.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shared.errors import DepotwatchError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SpoolError(DepotwatchError):
    """The spool file cannot be opened or written."""


class Kind(StrEnum):
    """What a spooled message is; when the spool is full, a shadow flow's detections go first, then
    thumbnails, then the production detections."""

    DETECTION = "detection"
    THUMBNAIL = "thumbnail"
    SHADOW = "shadow"


DROP_ORDER = (Kind.SHADOW, Kind.THUMBNAIL, Kind.DETECTION)
# What a new message of a kind may push out of a full spool.
MAY_DISPLACE = {
    Kind.DETECTION: set(DROP_ORDER),
    Kind.THUMBNAIL: {Kind.SHADOW, Kind.THUMBNAIL},
    Kind.SHADOW: {Kind.SHADOW},
}


@dataclass(frozen=True)
class Spooled:
    """A message waiting for the broker's acknowledgement."""

    id: int
    kind: Kind
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Spool:
    """The durable outbox of one edge node."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open spool {path}: {exc}") from exc
        self.dropped = dict.fromkeys(Kind, 0)
        self._bytes: int = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()[0]
        depth = self.depth()
        if depth:
            log.info(
                "spool %s holds %d messages (%d bytes) from before the restart", path, depth, self._bytes
            )

    def put(self, kind: Kind, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int | None:
        """Store a message; returns its id, or None when it was dropped for lack of room."""
        size = len(payload)
        with self._lock:
            if size > self.max_bytes or not self._make_room(size, kind):
                self.dropped[kind] += 1
                return None
            cur = self._db.execute(
                "INSERT INTO outbox (kind, topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?, ?)",
                (kind.value, topic, payload, qos, int(retain), time.time()),
            )
            self._bytes += size
            return int(cur.lastrowid or 0)

    def _make_room(self, size: int, kind: Kind) -> bool:
        for victim in DROP_ORDER:
            if self._bytes + size <= self.max_bytes:
                return True
            if victim not in MAY_DISPLACE[kind]:
                return False
            while self._bytes + size > self.max_bytes:
                row = self._db.execute(
                    "SELECT id, LENGTH(payload) FROM outbox WHERE kind = ? ORDER BY id LIMIT 1",
                    (victim.value,),
                ).fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                self._bytes -= row[1]
                self.dropped[victim] += 1
        return bool(self._bytes + size <= self.max_bytes)

    def pending(self, after_id: int = 0, limit: int = 100, up_to_id: int | None = None) -> list[Spooled]:
        """Messages in id order after `after_id` (and up to `up_to_id`, if given)."""
        upper = up_to_id if up_to_id is not None else 2**62
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, payload, qos, retain, created FROM outbox "
                "WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (after_id, upper, limit),
            ).fetchall()
        return [Spooled(r[0], Kind(r[1]), r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    def ack(self, message_id: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            row = self._db.execute(
                "SELECT LENGTH(payload) FROM outbox WHERE id = ?", (message_id,)
            ).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
                self._bytes -= row[0]

    def last_id(self) -> int:
        """The newest message id (0 when empty)."""
        with self._lock:
            (value,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()
        return int(value)

    def depth(self) -> int:
        """Messages waiting."""
        (value,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(value)

    def depth_by_topic(self) -> dict[str, int]:
        """Messages waiting, per topic."""
        with self._lock:
            rows = self._db.execute("SELECT topic, COUNT(*) FROM outbox GROUP BY topic").fetchall()
        return {str(topic): int(count) for topic, count in rows}

    @property
    def bytes(self) -> int:
        """Payload bytes waiting."""
        return int(self._bytes)

    def next_counter(self, name: str) -> int:
        """Increment and return a persistent counter (starts at 0)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, 0) "
                "ON CONFLICT(name) DO UPDATE SET value = value + 1",
                (name,),
            )
            (value,) = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(value)

    def close(self) -> None:
        """Close the file; pending messages stay for the next start."""
        with self._lock:
            self._db.close()
