"""What live subscribers (the map, SSE clients) read: the latest state and the recent events, each
with a counter, so a reader asks "anything after N?" and never misses or repeats one."""

from __future__ import annotations

import threading
from collections import deque

from cloud.fse import Event, TrackState

# Recent events kept for readers that fell behind or reconnect.
RECENT_EVENTS = 500
# State changes smaller than this (metres) are not worth a push.
POSITION_RESOLUTION_M = 0.05


class LiveFeed:
    """Written by the estimator loop, read by the API's streams."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.events_total = 0
        self.state: list[TrackState] = []
        self.state_version = 0
        self._signature: object = None

    def publish_state(self, state: list[TrackState], identities_version: int = 0) -> None:
        """Take the state after an update, and the version of the identities (a locomotive newly
        named is a change worth a push, though it did not move)."""
        signature = (_signature(state), identities_version)
        with self._lock:
            if signature != self._signature:
                self._signature = signature
                self.state = state
                self.state_version += 1

    def publish_events(self, events: list[Event]) -> None:
        """Take events once they are saved (so what a reader is told is in the event history)."""
        with self._lock:
            self._events.extend(events)
            self.events_total += len(events)

    def events_after(self, seen: int) -> tuple[int, list[Event]]:
        """Events after the first `seen` ever published (as many as are still kept), and the new total."""
        with self._lock:
            new = min(self.events_total - seen, len(self._events))
            return self.events_total, list(self._events)[len(self._events) - new :] if new > 0 else []


def _signature(state: list[TrackState]) -> object:
    step = POSITION_RESOLUTION_M
    return tuple(
        (
            t.track_id,
            t.unknown,
            tuple(
                (
                    loco.loco_id,
                    round(loco.start_m / step),
                    round(loco.end_m / step),
                    loco.moving,
                    loco.station,
                )
                for loco in t.locos
            ),
        )
        for t in state
    )
