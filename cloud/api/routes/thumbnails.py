"""Thumbnails the edge nodes sent (kept for `recognition.thumbnail_retention_days`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from cloud.api.deps import SessionDep, ViewerKey
from cloud.db.models import ThumbnailRow

router = APIRouter(prefix="/api/thumbnails", tags=["thumbnails"])


@router.get("/{thumbnail_id}", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
def get_thumbnail(_: ViewerKey, session: SessionDep, thumbnail_id: str) -> Response:
    """The JPEG."""
    row = session.get(ThumbnailRow, thumbnail_id)
    if row is None:
        raise HTTPException(404, f"no thumbnail {thumbnail_id!r} (never received, or past its retention)")
    return Response(row.jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
