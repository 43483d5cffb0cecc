"""A deadline on every HTTP request: one that has not started its answer within `seconds` gets a 503
with the reason, whatever it waits for (a database connection that went away mid-query, say), so a
client is never held without an answer. The request itself goes on in the background and its late
answer is discarded. Streams (SSE) start their answer at once and are not cut."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class Deadline:
    """Pure ASGI middleware (no response buffering, so streaming is untouched)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; answer 503 if its answer has not begun by the deadline."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()
        late = False

        async def guarded(message: Message) -> None:
            if late:
                return  # the client has had its 503
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if started.is_set() or task.done():
            await task
            return
        late = True
        task.add_done_callback(_log_failure)
        log.warning(
            "HTTP %s %s: no answer within %.0f s; answered 503", scope["method"], scope["path"], self.seconds
        )
        detail = f"no answer within {self.seconds:.0f} s (is the database reachable?); try again later"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a request answered late failed: %r", task.exception())
