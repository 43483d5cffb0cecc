"""What the webhooks read and keep: a flow's events after a cursor, and each webhook's cursor."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from cloud.db.models import EventRow, IdentityRow, WebhookCursorRow


def load_cursor(engine: Engine, name: str, now: datetime) -> int:
    """Webhook `name`'s cursor; a webhook seen for the first time starts after the latest event (it is
    sent what happens from now on, not the whole history)."""
    with Session(engine) as session:
        row = session.get(WebhookCursorRow, name)
        if row is not None:
            return row.event_id
        latest = session.exec(select(func.max(EventRow.id))).one()
        row = WebhookCursorRow(name=name, event_id=latest or 0, updated_at=now)
        session.add(row)
        session.commit()
        return row.event_id


def save_cursor(engine: Engine, name: str, event_id: int, now: datetime) -> None:
    """Webhook `name` is done with every event up to `event_id`."""
    with Session(engine) as session:
        session.merge(WebhookCursorRow(name=name, event_id=event_id, updated_at=now))
        session.commit()


def events_after(engine: Engine, after: int, limit: int) -> list[EventRow]:
    """The events (of every flow) stored after event `after`, in the order of their ids."""
    with Session(engine) as session:
        query = select(EventRow).where(col(EventRow.id) > after)
        return list(session.exec(query.order_by(col(EventRow.id)).limit(limit)))


def events_waiting(engine: Engine, flow: str, after: int) -> int:
    """How many of the flow's events are stored after event `after`."""
    with Session(engine) as session:
        query = select(func.count()).where(EventRow.flow == flow, col(EventRow.id) > after)
        return int(session.exec(query).one())


def identity_of(engine: Engine, loco_id: str) -> tuple[str | None, str | None]:
    """A locomotive's settled series and number, (None, None) while none settled."""
    with Session(engine) as session:
        row = session.get(IdentityRow, loco_id)
        return (None, None) if row is None else (row.series, row.plate)
