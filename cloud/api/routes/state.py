"""The facility state, now or at a past time, and tracks with station occupancy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from cloud.api.deps import FlowDep, ServiceDep, ViewerKey, database_available
from cloud.api.params import ApiTime
from cloud.api.public import tracks_public
from cloud.api.schemas import StatePublic, TrackPublic

router = APIRouter(prefix="/api", tags=["state"])


@router.get("/state", response_model=StatePublic)
def get_state(
    _: ViewerKey,
    service: ServiceDep,
    flow: FlowDep,
    at: Annotated[
        ApiTime | None, Query(description="A past time (ISO 8601 with zone); now if absent.")
    ] = None,
) -> StatePublic:
    """Every track's locomotives and unseen stretches in a flow, now (from memory, so also while the
    database is away) or at a past moment (recomputed from the recorded observations, late backlog
    data included, keeping the locomotive ids shown live)."""
    fse = flow.fse  # once, with its own layout: a layout change may swap it meanwhile
    if at is None:
        return StatePublic(
            at=datetime.now(UTC), tracks=tracks_public(fse.facility, fse.state(), flow.identities)
        )
    database_available(service)
    past = flow.state_at(at)
    if past is None:
        raise HTTPException(404, f"nothing was recorded at or before {at.isoformat()}")
    return StatePublic(at=at, tracks=tracks_public(fse.facility, past, flow.identities))


@router.get("/tracks", response_model=list[TrackPublic])
def get_tracks(_: ViewerKey, flow: FlowDep) -> list[TrackPublic]:
    """Tracks with their stations' occupancy in a flow, now."""
    fse = flow.fse
    return tracks_public(fse.facility, fse.state(), flow.identities)
