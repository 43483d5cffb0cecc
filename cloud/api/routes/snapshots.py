"""A camera's latest full-resolution snapshot, and asking its node for a fresh one (operators: for
calibrating a camera and checking its aim). The node answers the request on its ack topic and sends
the snapshot on the camera's snapshot topic, which the ingest keeps."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from sqlmodel import Session

from cloud.api.deps import OperatorKey, ServiceDep, SessionDep, camera_named
from cloud.api.schemas import CommandAccepted, SnapshotPublic
from cloud.db.models import CameraSnapshotRow
from cloud.service import CloudService
from shared.messages import RequestSnapshot
from shared.topics import Topic, TopicKind

router = APIRouter(prefix="/api/cameras", tags=["snapshots"])


def latest_snapshot(service: CloudService, session: Session, camera_id: str) -> CameraSnapshotRow:
    """The camera's latest snapshot; 404 naming what is missing (the camera, or a snapshot of it)."""
    camera_named(service, camera_id)
    row = session.get(CameraSnapshotRow, camera_id)
    if row is None:
        raise HTTPException(
            404,
            f"camera {camera_id} has sent no snapshot yet; "
            f"POST /api/cameras/{camera_id}/snapshot to ask its node for one",
        )
    return row


@router.get(
    "/{camera_id}/snapshot", response_class=Response, responses={200: {"content": {"image/jpeg": {}}}}
)
def get_snapshot(camera_id: str, _: OperatorKey, service: ServiceDep, session: SessionDep) -> Response:
    """The camera's latest snapshot, its JPEG at full resolution; what it is in the headers
    (`X-Snapshot-Id`, `X-Captured-At`, `X-Calibration-Version`, `X-Node-Id`, `X-Resolution`)."""
    row = latest_snapshot(service, session, camera_id)
    headers = {
        "X-Snapshot-Id": row.snapshot_id,
        "X-Captured-At": row.captured_at.isoformat(),
        "X-Calibration-Version": row.calibration_version,
        "X-Node-Id": row.node_id,
        "X-Resolution": f"{row.width}x{row.height}",
        # A fresher snapshot may replace it at any time.
        "Cache-Control": "private, no-cache",
    }
    return Response(row.jpeg, media_type="image/jpeg", headers=headers)


@router.get("/{camera_id}/snapshot/meta")
def get_snapshot_meta(
    camera_id: str, _: OperatorKey, service: ServiceDep, session: SessionDep
) -> SnapshotPublic:
    """What the camera's latest snapshot is: when, at what size, under which calibration."""
    row = latest_snapshot(service, session, camera_id)
    return SnapshotPublic.model_validate(row, update={"size_bytes": len(row.jpeg)})


@router.post("/{camera_id}/snapshot", status_code=202)
def request_snapshot(camera_id: str, role: OperatorKey, service: ServiceDep) -> CommandAccepted:
    """Ask the camera's node for a fresh snapshot (a `request_snapshot` command); it replaces the kept
    one once it arrives. 503 when the broker is not reachable (nothing is sent)."""
    camera = camera_named(service, camera_id)
    request = service.send_command(camera.node, RequestSnapshot(camera_id=camera_id), by=f"api:{role.value}")
    if request is None:
        raise HTTPException(503, "the broker is not reachable right now; nothing was sent")
    topic = Topic(TopicKind.COMMAND, service.facility.site, camera.node)
    return CommandAccepted(command_id=str(request.command_id), topic=str(topic))
