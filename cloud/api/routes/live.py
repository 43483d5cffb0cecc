"""One Server-Sent Events stream per flow for live clients such as the facility map: the whole state
whenever it changes (`event: state`) and each event as it happens (`event: event`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from cloud.api.deps import FlowDep, ServiceDep, ViewerKey
from cloud.api.public import event_public, tracks_public
from cloud.api.schemas import StatePublic
from cloud.api.streams import STREAM_POLL_S, sse

router = APIRouter(prefix="/api/live", tags=["live"])
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0


@router.get("")
async def live(_: ViewerKey, service: ServiceDep, flow: FlowDep) -> StreamingResponse:
    """A flow's state (prod's by default) at once and on every change, then its events as they come."""
    feed = flow.live

    async def stream() -> AsyncIterator[str]:
        version = -1
        seen = feed.events_total
        quiet = 0.0
        while True:
            if feed.state_version != version:
                version = feed.state_version
                state = StatePublic(
                    at=datetime.now(UTC),
                    tracks=tracks_public(flow.fse.facility, feed.state, flow.identities),
                )
                yield sse(state, "state")
                quiet = 0.0
            seen, new = feed.events_after(seen)
            for event in new:
                yield sse(event_public(event), "event")
                quiet = 0.0
            if quiet >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                quiet = 0.0
            await asyncio.sleep(STREAM_POLL_S)
            quiet += STREAM_POLL_S

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
