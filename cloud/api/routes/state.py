"""The facility state, now or at a past time, and tracks with station occupancy."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import col, select

from cloud.api.deps import ServiceDep, SessionDep, ViewerKey
from cloud.api.schemas import LocoPublic, StatePublic, StationPublic, TrackPublic
from cloud.db.models import SnapshotRow
from shared.layout import Facility

router = APIRouter(prefix="/api", tags=["state"])


def _tracks(facility: Facility, raw: list[dict[str, Any]]) -> list[TrackPublic]:
    out = []
    for t in raw:
        locos = [LocoPublic.model_validate(loco) for loco in t["locos"]]
        track = facility.tracks[t["track_id"]]
        stations = [
            StationPublic(
                station_id=sid,
                name=st.name,
                start_m=st.start_m,
                end_m=st.end_m,
                occupied_by=[loco.loco_id for loco in locos if loco.station == sid],
            )
            for sid, st in facility.stations_on_track(t["track_id"]).items()
        ]
        out.append(
            TrackPublic(
                track_id=t["track_id"],
                name=track.name,
                length_m=track.length_m,
                locos=locos,
                unknown=[tuple(u) for u in t["unknown"]],
                stations=stations,
            )
        )
    return out


@router.get("/state", response_model=StatePublic)
def get_state(
    _: ViewerKey,
    service: ServiceDep,
    session: SessionDep,
    at: Annotated[
        datetime | None, Query(description="A past time (ISO 8601 with zone); now if absent.")
    ] = None,
) -> StatePublic:
    """Every track's locomotives and unseen stretches, now or as last recorded before `at`."""
    if at is None:
        raw = [
            {"track_id": t.track_id, "unknown": t.unknown, "locos": [asdict(loco) for loco in t.locos]}
            for t in service.fse.state()
        ]
        return StatePublic(at=datetime.now(UTC), tracks=_tracks(service.facility, raw))
    if at.tzinfo is None:
        raise HTTPException(422, "`at` needs a time zone, e.g. 2026-03-02T10:00:00Z")
    snapshot = session.exec(
        select(SnapshotRow).where(SnapshotRow.at <= at).order_by(col(SnapshotRow.at).desc()).limit(1)
    ).first()
    if snapshot is None:
        raise HTTPException(404, f"no state was recorded at or before {at.isoformat()}")
    return StatePublic(at=snapshot.at, tracks=_tracks(service.facility, snapshot.state))


@router.get("/tracks", response_model=list[TrackPublic])
def get_tracks(_: ViewerKey, service: ServiceDep, session: SessionDep) -> list[TrackPublic]:
    """Tracks with their stations' occupancy, now."""
    return get_state(_, service, session).tracks
