"""The service's owned thread for the estimators' writes: each flow's updates (locomotives, positions,
events, snapshots) and the periodic jobs (retention, silent nodes), so that no estimator update ever
waits for the database. The live state goes on from memory while the database is away; the updates
wait here and are saved in order, several per transaction, once it is back. A flow's events reach its
live feed only once saved, so what a reader is told is in the event history, and nothing is dropped.

While the database is away a wall-clock flow's waiting updates are bounded: beyond MAX_WAITING the
two oldest are merged (every event kept, the positions in between thinned). A data-clock flow (a
replay) is never thinned: the ingest that drives it waits instead, as it did when it saved itself.
An update the database refuses while it answers is logged and dropped, never retried forever.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from cloud.db.failures import database_away, reason
from cloud.flows import FlowRuntime
from cloud.state_store import Update

log = logging.getLogger(__name__)

# Updates saved per transaction at most.
BATCH_UPDATES = 200
# Updates a flow may have waiting (at 10 a second, five minutes) before the oldest are merged.
MAX_WAITING = 3000
RETRY_INTERVAL_S = 1.0
LOG_EVERY_S = 30.0


@dataclass
class _Job:
    name: str
    run: Callable[[], object]


@dataclass
class StateWriterCounts:
    """What the writer did since start."""

    saved: int = 0
    merged: int = 0  # updates merged into a later one while the database was away
    dropped: int = 0  # updates the database refused
    failures: int = 0  # saves that failed with the database away, and were retried


@dataclass
class _Flow:
    runtime: FlowRuntime
    waiting: deque[Update] = field(default_factory=deque)
    saving: int = 0  # the first `saving` waiting updates are being saved: never merged meanwhile

    def merge_oldest(self) -> bool:
        """Merge the two oldest updates not being saved into one; False if there are not two."""
        i = self.saving
        if i + 1 >= len(self.waiting):
            return False
        older = self.waiting[i]
        del self.waiting[i]
        self.waiting[i] = _merged(older, self.waiting[i])
        return True


class StateWriter:
    """`put` an update or a job on any thread; the owned thread writes them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.counts = StateWriterCounts()
        self.last_error = ""
        self._flows: dict[str, _Flow] = {}
        self._jobs: deque[_Job] = deque()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._logged_at = 0.0
        self._oldest: float | None = None  # when the oldest waiting write was put
        self._thread = threading.Thread(target=self._loop, name="state-writer", daemon=True)

    def start(self) -> None:
        """Start the owned thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Save what waits (while the database answers, up to `timeout`), then stop."""
        if not self.flush(timeout):
            log.warning("state writer: stopped with %d updates unsaved", self.waiting)
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the owned thread runs."""
        return self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Updates and jobs waiting to be written, every flow's together."""
        with self._changed:
            return sum(len(f.waiting) for f in self._flows.values()) + len(self._jobs)

    def stalled_s(self) -> float:
        """How long the oldest waiting write has waited (0 when none waits)."""
        oldest = self._oldest
        return 0.0 if oldest is None else time.monotonic() - oldest

    def put(self, runtime: FlowRuntime, update: Update) -> None:
        """Queue a flow's update; a data-clock flow's waits while too many wait."""
        with self._changed:
            flow = self._flows.get(runtime.name)
            if flow is None or flow.runtime is not runtime:
                flow = self._flows.setdefault(runtime.name, _Flow(runtime))
            while runtime.data_clock and len(flow.waiting) >= MAX_WAITING and not self._stop.is_set():
                self._changed.wait(0.5)
            flow.waiting.append(update)
            if len(flow.waiting) > MAX_WAITING and flow.merge_oldest():
                self.counts.merged += 1
            self._mark_waiting()
            self._changed.notify_all()

    def job(self, name: str, run: Callable[[], object]) -> None:
        """Run `run` on the writer's thread (a failure is logged; the job is not retried); a job of
        the same name still waiting (the database is away) is not queued twice."""
        with self._changed:
            if any(job.name == name for job in self._jobs):
                return
            self._jobs.append(_Job(name, run))
            self._mark_waiting()
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until nothing waits; False if not within `timeout`."""
        deadline = time.monotonic() + timeout
        while self.waiting:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.02)
        return True

    def _mark_waiting(self) -> None:
        if self._oldest is None:
            self._oldest = time.monotonic()

    # writer thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._changed:
                    if not self._jobs and not any(f.waiting for f in self._flows.values()):
                        self._oldest = None
                        self._changed.wait(0.2)
                        continue
                    flows = list(self._flows.values())
                if not self._write(flows):
                    self._stop.wait(RETRY_INTERVAL_S)
            except Exception:  # a bug here must cost a retry, never the thread
                log.exception("state writer: failed; retrying")
                self._stop.wait(RETRY_INTERVAL_S)

    def _write(self, flows: list[_Flow]) -> bool:
        """Save what waits of every flow, then run the jobs; False when the database is away."""
        for flow in flows:
            with self._changed:
                batch = list(itertools.islice(flow.waiting, BATCH_UPDATES))
                flow.saving = len(batch)
            try:
                if batch and not self._save(flow, batch):
                    return False
            finally:
                with self._changed:
                    flow.saving = 0
        while True:
            with self._changed:
                if not self._jobs:
                    break
                job = self._jobs.popleft()
            try:
                job.run()
            except Exception as exc:
                log.error("state writer: %s failed: %s", job.name, reason(exc))
        with self._changed:
            self._oldest = time.monotonic() if self._jobs or any(f.waiting for f in flows) else None
            self._changed.notify_all()
        return True

    def _save(self, flow: _Flow, batch: list[Update]) -> bool:
        try:
            flow.runtime.store.save_updates(batch)
        except Exception as exc:
            if database_away(self.engine, exc):
                self._failed(exc)
                return False
            # One update the database refuses must not hold up the rest: save the others alone.
            for update in batch:
                try:
                    flow.runtime.store.save_updates([update])
                except Exception as one:
                    if database_away(self.engine, one):
                        self._failed(one)
                        return False
                    self.counts.dropped += 1
                    log.error(
                        "state writer: flow %s's update of %s refused, dropped: %s",
                        flow.runtime.name,
                        update.at.isoformat(),
                        reason(one),
                    )
                    self._done(flow, [update], published=False)
                else:
                    self._done(flow, [update])
            return True
        self._done(flow, batch)
        return True

    def _done(self, flow: _Flow, batch: list[Update], published: bool = True) -> None:
        with self._changed:
            for update in batch:
                oldest = flow.waiting.popleft()
                if oldest is not update:
                    raise RuntimeError("an update being saved was merged meanwhile")
                flow.saving -= 1
            self.counts.saved += len(batch) if published else 0
            self._changed.notify_all()
        if published:
            for update in batch:
                flow.runtime.live.publish_events(update.events)

    def _failed(self, exc: BaseException) -> None:
        self.counts.failures += 1
        self.last_error = reason(exc)
        if time.monotonic() - self._logged_at >= LOG_EVERY_S:
            self._logged_at = time.monotonic()
            log.error(
                "state writer: saving the state failed (%s); %d updates wait, retrying every %.0f s",
                self.last_error,
                self.waiting,
                RETRY_INTERVAL_S,
            )


def _merged(older: Update, newer: Update) -> Update:
    """One update standing for two: the later state, every event of both."""
    return Update(
        at=newer.at,
        locos=newer.locos,
        events=older.events + newer.events,
        snapshot=newer.snapshot if newer.snapshot is not None else older.snapshot,
    )
