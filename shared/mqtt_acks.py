"""Acknowledgements of received QoS 1 messages, sent in the order the messages arrived.

MQTT requires a client to send PUBACKs in the order the PUBLISH packets were received (3.1.1 and 5.0,
section 4.6), but a consumer finishes them in its own order: a worker pool recognises thumbnails side
by side, a database commit acknowledges a batch. Each message takes a ticket when it arrives; `done`
marks it finished and sends every acknowledgement that is then at the head of the line. A ticket of
an earlier connection is ignored: the broker delivers that message again on the new one, under a
packet id that may by then name another message. Every ticket must be finished, or the messages
behind it wait: the broker's in-flight window fills and it sends nothing more.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Ticket:
    """One received message waiting for its acknowledgement."""

    mid: int
    qos: int
    generation: int
    finished: bool = False


class AckOrder:
    """Holds acknowledgements back until every message received before them is acknowledged too."""

    def __init__(self, send: Callable[[int, int], object]) -> None:
        # `send` (paho's ack) only queues a packet, never calls back: it is called holding the lock,
        # so that two finishing threads cannot interleave their acknowledgements.
        self._send = send
        self._lock = threading.Lock()
        self._line: deque[Ticket] = deque()
        self._generation = 0

    def new_connection(self) -> None:
        """Forget the tickets of the previous connection: the broker redelivers their messages."""
        with self._lock:
            self._generation += 1
            self._line.clear()

    def take(self, mid: int, qos: int) -> Ticket:
        """A ticket for a message just received (call in arrival order: paho's network thread)."""
        with self._lock:
            ticket = Ticket(mid, qos, self._generation)
            if qos > 0:
                self._line.append(ticket)
            return ticket

    def done(self, ticket: Ticket) -> None:
        """The message is handled; acknowledge it as soon as those before it are. Idempotent."""
        with self._lock:
            if ticket.finished or ticket.generation != self._generation or ticket.qos == 0:
                ticket.finished = True
                return
            ticket.finished = True
            line = self._line
            while line and line[0].finished:
                head = line.popleft()
                self._send(head.mid, head.qos)

    @property
    def waiting(self) -> int:
        """Messages received on this connection and not yet acknowledged."""
        with self._lock:
            return len(self._line)
