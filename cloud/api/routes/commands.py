"""Remote control of edge nodes (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException

from cloud.api.deps import OperatorKey, ServiceDep
from cloud.api.schemas import CommandAccepted
from shared.messages import Command
from shared.topics import Topic, TopicKind

router = APIRouter(prefix="/api/nodes", tags=["commands"])


@router.post("/{node_id}/commands", response_model=CommandAccepted, status_code=202)
def send_command(
    role: OperatorKey, service: ServiceDep, node_id: str, command: Annotated[Command, Body()]
) -> CommandAccepted:
    """Publish a command; the node answers on its ack topic."""
    if node_id not in service.facility.nodes:
        raise HTTPException(404, f"no node {node_id!r} in the layout")
    request = service.send_command(node_id, command, by=f"api:{role.value}")
    if request is None:
        raise HTTPException(503, "the broker is not reachable right now; nothing was sent")
    topic = Topic(TopicKind.COMMAND, service.facility.site, node_id)
    return CommandAccepted(command_id=str(request.command_id), topic=str(topic))
