"""Events: filtered and paginated, and live as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlmodel import col, func, select

from cloud.api.deps import FlowDep, SessionDep, ViewerKey
from cloud.api.params import ApiTime, Offset
from cloud.api.public import event_public
from cloud.api.schemas import EventPage, EventPublic
from cloud.api.streams import STREAM_POLL_S, sse
from cloud.db.models import EventRow
from cloud.fse import EventKind

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=EventPage)
def list_events(
    _: ViewerKey,
    session: SessionDep,
    flow: FlowDep,
    since: ApiTime | None = None,
    until: ApiTime | None = None,
    track: str | None = None,
    kind: EventKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> EventPage:
    """A flow's events, newest first."""
    query = select(EventRow).where(EventRow.flow == flow.name)
    if since is not None:
        query = query.where(EventRow.at >= since)
    if until is not None:
        query = query.where(EventRow.at <= until)
    if track is not None:
        query = query.where(EventRow.track_id == track)
    if kind is not None:
        query = query.where(EventRow.kind == kind.value)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(EventRow.at).desc(), col(EventRow.id).desc()).offset(offset).limit(limit)
    )
    return EventPage(total=total, items=[EventPublic.model_validate(r, from_attributes=True) for r in rows])


@router.get("/stream")
async def stream_events(_: ViewerKey, flow: FlowDep) -> StreamingResponse:
    """Each new event of a flow (prod's by default) as an SSE `data:` line, as it happens."""
    feed = flow.live

    async def events() -> AsyncIterator[str]:
        seen = feed.events_total
        yield ": connected\n\n"
        while True:
            await asyncio.sleep(STREAM_POLL_S)
            seen, new = feed.events_after(seen)
            for event in new:
                yield sse(event_public(event))

    return StreamingResponse(events(), media_type="text/event-stream")
