"""A flow run in shadow: another model on the frames the node's own flow has just estimated, on a
thread of its own that never holds the main flow up. It always takes the newest batch; a batch still
waiting when a newer one arrives is skipped and counted, so under load the shadow thins out, never
the main flow. A shadow model that fails is logged and counted; it takes nothing else down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from edge.aggregate import Sampled
from edge.lpe.estimator import PositionEstimator
from edge.observability import EdgeMetrics
from shared.messages import LocoExtent

log = logging.getLogger(__name__)

Emit = Callable[[Sampled, list[LocoExtent]], None]


class ShadowRunner:
    """Runs one shadow flow's estimator; `offer` never blocks."""

    def __init__(self, flow: str, estimator: PositionEstimator, emit: Emit, metrics: EdgeMetrics) -> None:
        self.flow = flow
        self.estimator = estimator
        self._emit = emit
        self._inferred = metrics.shadow_frames_inferred.labels(flow)
        self._skipped = metrics.shadow_frames_skipped.labels(flow)
        self._failed = metrics.shadow_failures.labels(flow)
        self._pending: list[Sampled] = []
        self._lock = threading.Lock()
        # Held over a batch's estimate and emit, so that a recalibration falls between two batches.
        self._batch = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"edge-shadow-{flow}", daemon=True)

    def offer(self, batch: Sequence[Sampled]) -> None:
        """Hand over the frames the main flow just estimated, replacing any batch not yet started."""
        with self._lock:
            if self._pending:
                self._skipped.inc(len(self._pending))
            self._pending = list(batch)
        self._ready.set()

    def start(self) -> None:
        """Start the shadow flow's thread."""
        self._thread.start()

    def stop(self) -> None:
        """End and join the thread, then close the model."""
        self._stop.set()
        self._ready.set()
        self._thread.join(10)
        close = getattr(self.estimator, "close", None)
        if close is not None:
            close()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Let the batch in progress finish and be emitted, and start none until the block ends."""
        with self._batch:
            yield

    def alive(self) -> bool:
        """Whether the thread runs (for /healthz)."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            self._ready.wait(0.5)
            with self._lock:
                batch, self._pending = self._pending, []
                self._ready.clear()
            if not batch or self._stop.is_set():
                continue
            with self._batch:
                try:
                    results = self.estimator.estimate([(s.camera_id, s.frame) for s in batch])
                except Exception:
                    self._failed.inc()
                    if not failing:
                        log.exception("shadow flow %s: its model failed; the main flow goes on", self.flow)
                    failing = True
                    continue
                failing = False
                for sampled, extents in zip(batch, results, strict=True):
                    self._emit(sampled, extents)
            self._inferred.inc(len(batch))
