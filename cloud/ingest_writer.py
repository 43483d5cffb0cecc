"""The ingest's owned writer thread: every database write of the ingest, in arrival order, each message
acknowledged to the broker once what it carries is committed (or, refused, its dead letter is).

Entries are an observation row to insert or a write of its own (a status, a thumbnail, a vote, a dead
letter). The writer takes what is waiting, inserts consecutive rows in one statement (batches grow with
the load: group commit) and runs the other writes one by one. A failure is one of two kinds:
- the database is away (connection refused or lost, locked, full: a transient error, or any error
  while the database does not answer a ping): the writer waits and retries from the entry that
  failed, nothing acknowledged, while the handler goes on fusing until `MAX_PENDING` entries wait;
- the database answers but refuses this data: the batch is split, and each entry it refuses becomes a
  dead letter with the database's reason. One bad row never blocks or kills the others.
The loop itself survives anything; `stalled_s` says how long the oldest entry has waited, for health.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from cloud.db.bulk import insert_observations
from cloud.db.failures import database_away, reason
from shared.mqtt import Ack

log = logging.getLogger(__name__)

# Rows per insert at most; a burst beyond it is written in several statements.
BATCH_ROWS = 1000
# Entries waiting for the database at most (and their payloads' bytes); beyond, the handler waits and
# so, in turn, does the broker. Room for minutes of a depot's detections during a database outage.
MAX_PENDING = 50_000
MAX_PENDING_BYTES = 256 * 1024 * 1024
# A write that failed because the database is away is retried this often, in order, until it succeeds.
RETRY_INTERVAL_S = 1.0
# A failing database is logged at most this often (it is retried every second).
LOG_EVERY_S = 30.0


@dataclass(eq=False)
class Entry:
    """One message's write: an observation row, or a write that commits by itself."""

    topic: str
    payload: bytes
    ack: Ack
    row: dict[str, Any] | None = None
    write: Callable[[], object] | None = None
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class WriterCounts:
    """What the writer did since start."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0  # entries the database refused: dead-lettered
    write_failures: int = 0  # writes that failed with the database away, and were retried
    lost: int = 0  # entries refused whose dead letter was refused too: logged, then acknowledged


class IngestWriter:
    """`put` entries on any one thread; the owned thread writes and acknowledges them in order."""

    def __init__(
        self,
        engine: Engine,
        dead_letter: Callable[[str, bytes, str], None],
        counts: WriterCounts | None = None,
    ) -> None:
        self.engine = engine
        self._dead_letter = dead_letter
        self.counts = counts or WriterCounts()
        # Put and not yet finished, oldest first; the writer finishes them in this order.
        self._unfinished: deque[Entry] = deque()
        self._unfinished_bytes = 0
        self._put_total = 0
        self._finished_total = 0
        self._writer_idle = False  # waiting for entries: a put must wake it
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._logged_at = 0.0
        self.last_error = ""
        self._thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)

    def start(self) -> None:
        """Start the writer's thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer's thread and join it (up to `timeout`); entries not yet written are not
        acknowledged (the broker hands them over again)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the writer's thread is running."""
        return self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Entries put and not yet written."""
        return len(self._unfinished)

    def stalled_s(self) -> float:
        """How long the oldest entry not yet written has waited (0 when none waits)."""
        with self._changed:
            return time.monotonic() - self._unfinished[0].queued_at if self._unfinished else 0.0

    def put(self, entry: Entry) -> bool:
        """Queue an entry; waits while the database is too far behind. False if stopping first (the
        entry is then neither written nor acknowledged: the broker hands it over again)."""
        with self._changed:
            while self._unfinished and (
                len(self._unfinished) >= MAX_PENDING or self._unfinished_bytes >= MAX_PENDING_BYTES
            ):
                if self._stop.is_set():
                    return False
                self._changed.wait(0.5)
            self._unfinished.append(entry)
            self._unfinished_bytes += len(entry.payload)
            self._put_total += 1
            if self._writer_idle:
                self._changed.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far is written; False if not within `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            target = self._put_total
            while self._finished_total < target:
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not self._thread.is_alive():
                    return False
                self._changed.wait(0.2 if left is None else min(left, 0.2))
        return True

    # writer thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        batch: list[Entry] = []
        while not self._stop.is_set():
            try:
                if not batch:
                    batch = self._take()
                    if not batch:
                        continue
                batch = self._write(batch)
                if batch:  # the database is away: retry from the entry that failed
                    self._stop.wait(RETRY_INTERVAL_S)
            except Exception:  # a bug here must cost a retry, never the thread
                log.exception("ingest: the writer failed; retrying")
                self._stop.wait(RETRY_INTERVAL_S)

    def _take(self) -> list[Entry]:
        """The oldest entries (the previous batch is finished, so these are the next ones)."""
        with self._changed:
            if not self._unfinished:
                self._writer_idle = True
                self._changed.wait(0.2)
                self._writer_idle = False
            return list(itertools.islice(self._unfinished, BATCH_ROWS))

    def _write(self, batch: list[Entry]) -> list[Entry]:
        """Write a batch in order; returns what is left when the database went away."""
        i = 0
        while i < len(batch):
            if batch[i].row is None:
                if not self._run(batch[i]):
                    return batch[i:]
                i += 1
                continue
            j = i
            while j < len(batch) and batch[j].row is not None:
                j += 1
            left = self._insert(batch[i:j])
            if left:
                return left + batch[j:]
            i = j
        return []

    def _run(self, entry: Entry) -> bool:
        try:
            if entry.write is not None:
                entry.write()
        except Exception as exc:
            if self._transient(exc):
                return False
            return self._refuse(entry, f"could not be stored: {reason(exc)}")
        self._finish([entry])
        return True

    def _insert(self, rows: list[Entry]) -> list[Entry]:
        try:
            self._insert_rows(rows)
        except Exception as exc:
            if self._transient(exc):
                return rows
            # One bad row must not cost the others: insert them one by one, dead-letter what fails.
            for k, entry in enumerate(rows):
                try:
                    self._insert_rows([entry])
                except Exception as one:
                    if self._transient(one):
                        return rows[k:]
                    if not self._refuse(entry, f"the database refused it: {reason(one)}"):
                        return rows[k:]
        return []

    def _insert_rows(self, entries: list[Entry]) -> None:
        with self.engine.begin() as connection:
            inserted = insert_observations(connection, [e.row for e in entries if e.row is not None])
        self.counts.stored += inserted
        self.counts.duplicates += len(entries) - inserted
        self._finish(entries)

    def _refuse(self, entry: Entry, why: str) -> bool:
        """Dead-letter an entry the database refused; False if the database went away meanwhile."""
        try:
            self._dead_letter(entry.topic, entry.payload, why)
        except Exception as exc:
            if self._transient(exc):
                return False
            self.counts.lost += 1
            log.error("ingest: %s from %s refused, and so was its dead letter (%s)", why, entry.topic, exc)
        self.counts.refused += 1
        self._finish([entry])
        return True

    def _finish(self, entries: list[Entry]) -> None:
        for entry in entries:
            entry.ack()
        with self._changed:
            for entry in entries:
                oldest = self._unfinished.popleft()
                if oldest is not entry:
                    raise RuntimeError("ingest entries must be finished in the order they were put")
                self._unfinished_bytes -= len(entry.payload)
            self._finished_total += len(entries)
            self._changed.notify_all()

    def _transient(self, exc: Exception) -> bool:
        """Whether the database is away (rather than refusing this data); counts and logs it."""
        away = database_away(self.engine, exc)
        if away:
            self.counts.write_failures += 1
            self.last_error = reason(exc)
            if time.monotonic() - self._logged_at >= LOG_EVERY_S:
                self._logged_at = time.monotonic()
                log.error(
                    "ingest: database write failed (%s); %d messages wait, retrying every %.0f s",
                    self.last_error,
                    self.pending,
                    RETRY_INTERVAL_S,
                )
        return away
