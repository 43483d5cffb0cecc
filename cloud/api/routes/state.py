"""The facility state, now or at a past time, and tracks with station occupancy."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from cloud.api.deps import FlowDep, ServiceDep, ViewerKey, database_available
from cloud.api.params import ApiTime
from cloud.api.schemas import LocoPublic, StatePublic, StationPublic, TrackPublic
from cloud.fse import TrackState
from cloud.identities import Identities
from shared.layout import Facility

router = APIRouter(prefix="/api", tags=["state"])


def tracks_public(
    facility: Facility, states: list[TrackState], identities: Identities | None = None
) -> list[TrackPublic]:
    out = []
    for t in states:
        locos = [
            LocoPublic.model_validate(asdict(loco)).identified(
                identities.get(loco.loco_id) if identities else None
            )
            for loco in t.locos
        ]
        track = facility.tracks.get(t.track_id)
        if track is None:  # a state of another layout (swapped meanwhile): the next one matches
            continue
        stations = [
            StationPublic(
                station_id=sid,
                name=st.name,
                start_m=st.start_m,
                end_m=st.end_m,
                occupied_by=[loco.loco_id for loco in locos if loco.station == sid],
            )
            for sid, st in facility.stations_on_track(t.track_id).items()
        ]
        out.append(
            TrackPublic(
                track_id=t.track_id,
                name=track.name,
                length_m=track.length_m,
                locos=locos,
                unknown=list(t.unknown),
                stations=stations,
            )
        )
    return out


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
