"""The webhooks: what each has delivered, what waits, and why the last attempt failed."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import OperatorKey, ServiceDep
from cloud.api.schemas import WebhookPublic
from cloud.db.webhook_rows import events_waiting

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.get("", response_model=list[WebhookPublic])
def list_webhooks(_: OperatorKey, service: ServiceDep) -> list[WebhookPublic]:
    """Each configured webhook since the service started: events delivered, failed attempts, events
    given up, the event being retried and the last error; `waiting` counts the flow's events stored
    after its cursor (those it will look at next, whether its filters send them or not)."""
    hooks = []
    for sender in service.webhooks.senders:
        status = sender.status
        cursor = status.cursor
        waiting = None if cursor is None else events_waiting(service.engine, status.flow, cursor)
        hooks.append(
            WebhookPublic(
                **vars(status),
                kinds=[str(kind) for kind in sender.config.kinds],
                tracks=list(sender.config.tracks),
                waiting=waiting,
            )
        )
    return hooks
