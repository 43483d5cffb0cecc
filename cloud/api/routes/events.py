"""Events: filtered and paginated, and live as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from sqlmodel import col, func, select

from cloud.api.deps import ServiceDep, SessionDep, ViewerKey
from cloud.api.schemas import EventPage, EventPublic
from cloud.db.models import EventRow
from cloud.fse import EventKind

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=EventPage)
def list_events(
    _: ViewerKey,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    track: str | None = None,
    kind: EventKind | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EventPage:
    """Newest first."""
    query = select(EventRow)
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
async def stream_events(_: ViewerKey, service: ServiceDep) -> StreamingResponse:
    """Each new event as an SSE `data:` line, as it happens."""

    async def events() -> AsyncIterator[str]:
        sent = len(service.recent_events)
        yield ": connected\n\n"
        while True:
            await asyncio.sleep(0.25)
            recent = service.recent_events
            for event in recent[sent:] if sent <= len(recent) else recent:
                public = EventPublic(
                    at=event.at,
                    kind=event.kind.value,
                    track_id=event.track_id,
                    loco_id=event.loco_id,
                    station=event.station,
                    camera_id=event.camera_id,
                    detail=event.detail,
                )
                yield f"data: {public.model_dump_json()}\n\n"
            sent = len(recent)

    return StreamingResponse(events(), media_type="text/event-stream")
