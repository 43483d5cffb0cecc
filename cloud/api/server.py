"""The HTTP server of the cloud API: uvicorn with limits a server on a depot network needs.

uvicorn bounds a request head (h11's incomplete-event size) but answers an oversized one by closing the
socket with the rest unread, which resets the connection before the client reads the 400; and a
connection that never completes its request head is held for ever (its keep-alive timer only starts
after a first answer). `BoundedH11Protocol` answers 431 with the reason and closes gracefully, and
closes a connection whose request head is not complete within REQUEST_HEAD_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

# A request head (request line and headers) beyond this is refused; ours are a few hundred bytes.
MAX_REQUEST_HEAD_BYTES = 64 * 1024
# A connection must deliver a complete request head this soon after it opens or goes idle.
REQUEST_HEAD_TIMEOUT_S = 10.0
# Idle keep-alive connections are closed after this long.
KEEP_ALIVE_S = 5
# Connections and requests at once at most; beyond, uvicorn answers 503.
MAX_CONCURRENCY = 1000
# How long an answer may linger after a refusal, so the client reads it before the socket closes.
LINGER_S = 2.0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a bounded, timed request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start timing the first request's head."""
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop timing the head."""
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the bytes of a request head, refusing one too large; time the next head once a
        request is complete."""
        if self._refused:
            return  # reading what is left, so the answer is not lost to a reset
        waiting_for_head = self.conn.their_state is h11.IDLE
        if waiting_for_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
                self._refuse(431, f"the request line and headers exceed {MAX_REQUEST_HEAD_BYTES} bytes")
                return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            if self._head_timer is None:
                self._arm_head_timer()
        else:
            self._head_bytes = 0
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        """Ready for the next request's head."""
        super().on_response_complete()
        self._head_bytes = 0  # uvicorn's keep-alive timer covers the idle time until the next head

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(REQUEST_HEAD_TIMEOUT_S, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, f"the request head did not arrive within {REQUEST_HEAD_TIMEOUT_S:.0f} s")
        else:
            self.transport.close()  # opened and never used

    def _refuse(self, status: int, reason: str) -> None:
        self._refused = True
        self._disarm_head_timer()
        body = reason.encode()
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def make_server(app: FastAPI, host: str, port: int, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for the API with the limits above."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=BoundedH11Protocol,
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONCURRENCY,
    )
    return uvicorn.Server(config)
