"""Whether the database answers, checked on its own thread, so an API request during an outage is
told so at once (503) instead of hanging on a connection that went away.

Every PROBE_INTERVAL_S a fresh connection (no pool, short timeouts) runs a trivial query; two
failures in a row mark the database away, one success marks it back.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from cloud.db.engine import make_engine
from cloud.db.failures import why_not_answering

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
FAILURES_TO_BE_AWAY = 2


class DatabaseWatch:
    """Owns the probing thread; `available` and `away_s` are read by anyone."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: Engine | None = None
        self.available = True
        self.reason = ""
        self._away_since: float | None = None
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the probing thread, on an engine of its own."""
        engine = self._engine = make_engine(self._url, probe=True)
        self._thread = threading.Thread(target=self._loop, args=(engine,), name="database-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the probing thread (up to 5 s), and dispose of its engine."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._engine is not None:
            self._engine.dispose()

    def away_s(self) -> float:
        """How long the database has been away (0 while it answers)."""
        since = self._away_since
        return 0.0 if since is None else time.monotonic() - since

    def _loop(self, engine: Engine) -> None:
        while not self._stop.wait(PROBE_INTERVAL_S):
            problem = why_not_answering(engine)
            if problem is None:
                if not self.available:
                    log.info("database: answering again after %.0f s", self.away_s())
                self._failures, self.available, self.reason, self._away_since = 0, True, "", None
                continue
            self._failures += 1
            if self._failures >= FAILURES_TO_BE_AWAY and self.available:
                self.available, self.reason = False, problem
                self._away_since = time.monotonic() - PROBE_INTERVAL_S * self._failures
                log.error("database: not answering (%s); the API answers 503 where it needs it", problem)
