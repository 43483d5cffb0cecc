"""Store-and-forward, the sending half: the spool's messages go to the broker on a thread of their own.
Live messages go out as they come; the backlog from before the current connection follows in order,
marked historical, at a bounded rate; a row leaves the spool only on the broker's acknowledgement.
While held (Sparkplug's primary host is offline) nothing is sent; on release what was held is the
backlog, as after an outage."""

from __future__ import annotations

import queue
import threading
import time

from edge.observability import EdgeMetrics
from edge.spool import Kind, Spool, Spooled
from edge.threads import logged_thread
from shared.codec import decode, encode
from shared.messages import Detection, Thumbnail
from shared.mqtt import MqttConnection

# Messages in flight to the broker at once; more would only sit in paho's queue.
MAX_IN_FLIGHT = 100
# Live rows read from the spool per pass, so a long live queue does not starve the acks.
LIVE_BATCH = 100
# How long the loop sleeps when nothing wakes it: acks and new rows wake it at once.
IDLE_WAIT_S = 0.05


class SpoolPublisher:
    """Sends one node's spool over its broker link; `start()` and `stop()` own the thread."""

    def __init__(
        self,
        node_id: str,
        spool: Spool,
        link: MqttConnection,
        metrics: EdgeMetrics,
        backlog_rate_per_s: float,
    ) -> None:
        self.spool = spool
        self.link = link
        self.metrics = metrics
        self.backlog_rate_per_s = backlog_rate_per_s
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._backlog_boundary = 0
        self._reset_cursors = threading.Event()
        self._held = threading.Event()
        self._released = threading.Event()
        self.thread = logged_thread("edge-publish", self._loop, node_id)

    def start(self) -> None:
        """Start sending (whenever the link is connected)."""
        self.thread.start()

    def stop(self) -> None:
        """End and join the thread; what was not acknowledged stays in the spool."""
        self._stop.set()
        self._wake.set()
        self.thread.join(10)

    def wake(self) -> None:
        """A message was spooled: send it now rather than at the next idle wake."""
        self._wake.set()

    def acknowledged(self, mid: int) -> None:
        """The broker acknowledged message `mid` (on paho's thread): its row is forgotten on ours."""
        self._acks.put(mid)
        self._wake.set()

    def connected(self) -> None:
        """A new connection: what is in the spool now is its backlog, and what was in flight on the old
        one is sent again (the broker may never have had it)."""
        self._backlog_boundary = self.spool.last_id()
        self._reset_cursors.set()

    def hold(self) -> None:
        """Send nothing until `release()`; what is in flight still gets its acknowledgement."""
        self._held.set()

    def release(self) -> None:
        """Send again: what the spool holds now goes as backlog (historical, at the bounded rate)."""
        self._backlog_boundary = self.spool.last_id()
        self._released.set()
        self._held.clear()
        self._wake.set()

    @property
    def held(self) -> bool:
        """Whether sending is held."""
        return self._held.is_set()

    def _loop(self) -> None:
        in_flight: dict[int, Spooled] = {}
        live_cursor = backlog_cursor = 0
        tokens, refilled = 0.0, time.monotonic()
        rate = self.backlog_rate_per_s
        while not self._stop.is_set():
            self._wake.wait(IDLE_WAIT_S)
            self._wake.clear()
            if self._reset_cursors.is_set():
                self._reset_cursors.clear()
                in_flight.clear()
                live_cursor, backlog_cursor = self._backlog_boundary, 0
            while not self._acks.empty():
                row = in_flight.pop(self._acks.get(), None)
                if row is not None:
                    self.spool.ack(row.id)
                    self.metrics.published_bytes.labels(row.kind.value).inc(len(row.payload))
                    self.metrics.publish_seconds.observe(max(time.time() - row.created, 0.0))
            if not self.link.connected.is_set() or self._held.is_set():
                continue
            if self._released.is_set():  # release() sets it before it lifts the hold
                self._released.clear()
                # In flight stays in flight: the backlog pass skips those rows, so none is sent twice.
                live_cursor, backlog_cursor = max(live_cursor, self._backlog_boundary), 0
            room = MAX_IN_FLIGHT - len(in_flight)
            for row in (
                self.spool.pending(after_id=live_cursor, limit=min(room, LIVE_BATCH)) if room > 0 else []
            ):
                if self._held.is_set() or not self._send(row, row.payload, in_flight):
                    break
                live_cursor = row.id
            now = time.monotonic()
            tokens = min(tokens + (now - refilled) * rate, rate)
            refilled = now
            room = MAX_IN_FLIGHT - len(in_flight)
            if backlog_cursor < self._backlog_boundary and tokens >= 1 and room > 0:
                rows = self.spool.pending(
                    after_id=backlog_cursor, up_to_id=self._backlog_boundary, limit=min(int(tokens), room)
                )
                sending = {r.id for r in in_flight.values()}
                for row in rows:
                    if row.id in sending:
                        backlog_cursor = row.id
                        continue
                    if self._held.is_set() or not self._send(row, as_historical(row), in_flight):
                        break
                    backlog_cursor = row.id
                    tokens -= 1
                if not rows:
                    backlog_cursor = self._backlog_boundary

    def _send(self, row: Spooled, payload: bytes, in_flight: dict[int, Spooled]) -> bool:
        mid = self.link.publish(row.topic, payload, qos=row.qos, retain=row.retain)
        if mid is None:
            return False
        in_flight[mid] = row
        return True


def as_historical(row: Spooled) -> bytes:
    """The payload re-encoded with `historical` set: it is sent after an outage."""
    if row.kind in (Kind.DETECTION, Kind.SHADOW):
        detection = decode(Detection, row.payload)
        return encode(detection.model_copy(update={"historical": True}))
    thumb = decode(Thumbnail, row.payload)
    return encode(thumb.model_copy(update={"meta": thumb.meta.model_copy(update={"historical": True})}))
