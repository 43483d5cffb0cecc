"""Locomotives: list, one, and where it has been."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlmodel import col, select

from cloud.api.deps import FlowDep, ServiceDep, SessionDep, ViewerKey
from cloud.api.params import ApiTime
from cloud.api.schemas import LocoPublic, PositionPublic
from cloud.db.models import LocomotiveRow, PositionRow

router = APIRouter(prefix="/api/locomotives", tags=["locomotives"])


@router.get("", response_model=list[LocoPublic])
def list_locomotives(
    _: ViewerKey,
    session: SessionDep,
    flow: FlowDep,
    present: Annotated[
        bool | None, Query(description="Only those in the facility now (or only departed).")
    ] = True,
) -> list[LocoPublic]:
    """A flow's locomotives, with series and number once recognised."""
    query = (
        select(LocomotiveRow)
        .where(LocomotiveRow.flow == flow.name)
        .order_by(col(LocomotiveRow.track_id), col(LocomotiveRow.start_m))
    )
    if present is not None:
        query = query.where(LocomotiveRow.present == present)
    return [
        LocoPublic.model_validate(row, from_attributes=True).identified(flow.identities.get(row.loco_id))
        for row in session.exec(query)
    ]


@router.get("/{loco_id}", response_model=LocoPublic)
def get_locomotive(_: ViewerKey, service: ServiceDep, session: SessionDep, loco_id: str) -> LocoPublic:
    """One locomotive, with its series and number once recognised."""
    row = session.get(LocomotiveRow, loco_id)
    if row is None:
        raise HTTPException(404, f"no locomotive {loco_id!r}")
    runtime = service.flows.get(row.flow)
    identity = runtime.identities.get(loco_id) if runtime is not None else None
    return LocoPublic.model_validate(row, from_attributes=True).identified(identity)


@router.get("/{loco_id}/history", response_model=list[PositionPublic])
def get_history(
    _: ViewerKey,
    session: SessionDep,
    loco_id: str,
    since: ApiTime | None = None,
    until: ApiTime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[PositionPublic]:
    """Positions in time order."""
    if session.get(LocomotiveRow, loco_id) is None:
        raise HTTPException(404, f"no locomotive {loco_id!r}")
    query = select(PositionRow).where(PositionRow.loco_id == loco_id)
    if since is not None:
        query = query.where(PositionRow.at >= since)
    if until is not None:
        query = query.where(PositionRow.at <= until)
    rows = session.exec(query.order_by(col(PositionRow.at)).limit(limit))
    return [PositionPublic.model_validate(row, from_attributes=True) for row in rows]
