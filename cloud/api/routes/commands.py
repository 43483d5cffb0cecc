"""Remote control of edge nodes (operators)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException

from cloud.api.deps import OperatorKey, ServiceDep
from cloud.api.schemas import CommandAccepted
from shared.codec import encode
from shared.messages import Command, CommandRequest
from shared.topics import Topic, TopicKind

router = APIRouter(prefix="/api/nodes", tags=["commands"])


@router.post("/{node_id}/commands", response_model=CommandAccepted, status_code=202)
def send_command(
    role: OperatorKey, service: ServiceDep, node_id: str, command: Annotated[Command, Body()]
) -> CommandAccepted:
    """Publish a command; the node answers on its ack topic."""
    if node_id not in service.facility.nodes:
        raise HTTPException(404, f"no node {node_id!r} in the layout")
    request = CommandRequest(
        command_id=uuid.uuid4(), issued_at=datetime.now(UTC), issued_by=f"api:{role.value}", command=command
    )
    topic = str(Topic(TopicKind.COMMAND, service.facility.site, node_id))
    if service.link.publish(topic, encode(request)) is None:
        raise HTTPException(503, "the broker is not reachable right now; nothing was sent")
    return CommandAccepted(command_id=str(request.command_id), topic=topic)
