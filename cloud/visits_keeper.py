"""The station visits the Grafana panels read (table station_visits), kept as the reports API computes
them: from the recorded positions and departures, with the periods known only from an edge's backlog
replayed (cloud.backlog_replay). SQL alone cannot replay a backlog, so the cloud writes the visits and
the panels add up what is written.

A thread this object owns brings them up to date every `refresh_s`: the visits since `HORIZON` ago, and
from as far back as the backlog detections received since the last pass reach; the first pass, from the
first recorded position on, a day at a time (skipping to the next position or departure after a day
with none)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from cloud.backlog_replay import HANDOVER, MIN_REPLAY_STEP
from cloud.db.report_rows import replayed_inputs
from cloud.db.visit_rows import backlog_since, first_position, next_change, replace_visits
from cloud.flows import FlowRuntime
from cloud.reports import visits

log = logging.getLogger(__name__)

# Each pass recomputes at least this far back: a visit's end is known only once it has ended.
HORIZON = timedelta(hours=6)
# The first pass works through the history this much at a time.
CHUNK = timedelta(days=1)


class VisitsKeeper:
    """Keeps station_visits; `start()` and `stop()` own its thread, `refreshed` is set after each pass."""

    def __init__(self, engine: Engine, flows: Mapping[str, FlowRuntime], refresh_s: float) -> None:
        self.engine = engine
        self.flows = flows
        self.refresh_s = refresh_s
        self.refreshed = threading.Event()
        self.last_error: str | None = None
        self._done_to: dict[str, datetime] = {}  # per flow: when its last pass ran
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="cloud-visits", daemon=True)

    def start(self) -> None:
        """Start the thread (its first pass at once)."""
        self.thread.start()

    def stop(self) -> None:
        """End and join the thread."""
        self._stop.set()
        self.thread.join(30)

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self.thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh(datetime.now(UTC))
                self.last_error = None
            except Exception as exc:  # the database away, or a bug: logged, and tried again next time
                self.last_error = str(exc)[:300]
                log.exception("station visits: could not bring them up to date; trying again")
            self.refreshed.set()
            self._stop.wait(self.refresh_s)

    def refresh(self, now: datetime) -> None:
        """Bring every flow's kept visits up to `now`."""
        for name, runtime in list(self.flows.items()):
            since = self._since(name, now)
            if since is None:
                continue
            start: datetime | None = since
            while start is not None and start < now and not self._stop.is_set():
                end = min(start + CHUNK, now)
                inputs = replayed_inputs(
                    self.engine,
                    name,
                    start,
                    end,
                    runtime.fse.facility,
                    runtime.fse.settings,
                    max(runtime.interval, MIN_REPLAY_STEP),
                )
                replace_visits(self.engine, name, start, visits(inputs.stood, inputs.departures, start, end))
                # Quiet days (a depot closed, a test's history months ago) are skipped: nothing to redo.
                start = end if end >= now else next_change(self.engine, name, end)
            self._done_to[name] = now

    def _since(self, flow: str, now: datetime) -> datetime | None:
        done = self._done_to.get(flow)
        if done is None:
            return first_position(self.engine, flow)
        since = now - HORIZON
        backlog = backlog_since(self.engine, flow, done - timedelta(seconds=self.refresh_s))
        return since if backlog is None else min(since, backlog - HANDOVER)
