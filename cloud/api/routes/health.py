"""Nodes, cameras, dead letters; the service's own health and metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlmodel import col, delete, select

from cloud.api.deps import AdminKey, OperatorKey, ServiceDep, SessionDep, ViewerKey
from cloud.api.schemas import CameraPublic, DeadLetterPublic, NodePublic
from cloud.db.models import CameraRow, DeadLetterRow, NodeRow

router = APIRouter(tags=["health"])


@router.get("/api/nodes", response_model=list[NodePublic])
def list_nodes(_: ViewerKey, session: SessionDep) -> list[NodePublic]:
    """Each edge node's latest lifecycle and status."""
    rows = session.exec(select(NodeRow).order_by(NodeRow.node_id))
    return [NodePublic.model_validate(r, from_attributes=True) for r in rows]


@router.get("/api/cameras", response_model=list[CameraPublic])
def list_cameras(_: ViewerKey, session: SessionDep) -> list[CameraPublic]:
    """Each camera's latest status."""
    rows = session.exec(select(CameraRow).order_by(CameraRow.camera_id))
    return [CameraPublic.model_validate(r, from_attributes=True) for r in rows]


@router.get("/api/dead-letters", response_model=list[DeadLetterPublic])
def list_dead_letters(
    _: OperatorKey, session: SessionDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterPublic]:
    """The messages that could not be used, newest first, each with the reason."""
    rows = session.exec(select(DeadLetterRow).order_by(col(DeadLetterRow.id).desc()).limit(limit))
    return [DeadLetterPublic.model_validate(r, from_attributes=True) for r in rows]


@router.delete("/api/dead-letters", status_code=204)
def purge_dead_letters(_: AdminKey, session: SessionDep) -> Response:
    """Delete every dead letter."""
    session.exec(delete(DeadLetterRow))
    session.commit()
    return Response(status_code=204)


@router.get(
    "/healthz", responses={503: {"description": "Some part is not progressing; `problems` says which."}}
)
def healthz(service: ServiceDep) -> JSONResponse:
    """Healthy (200) while the broker is connected, the writers keep up with the database and the
    estimator updates; otherwise 503 with one line per problem."""
    problems = service.health()
    body = {
        "status": "unhealthy" if problems else "ok",
        "problems": problems,
        "mqtt_connected": service.link.connected.is_set(),
        "database_available": service.database.available,
        "ingest_pending": service.ingest.pending,
        "state_updates_waiting": service.state_writer.waiting,
        "locomotives": len(service.fse.locos()),
    }
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics")
def metrics(service: ServiceDep) -> Response:
    """The service's Prometheus metrics."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
