"""Counters kept in the database, so that they go on counting across restarts."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from cloud.db.models import CounterRow


def next_counter(engine: Engine, name: str) -> int:
    """Increment and return a counter (0 the first time). The row is locked while it is read and
    written (FOR UPDATE on PostgreSQL; SQLite writes one transaction at a time)."""
    with Session(engine) as session:
        row = session.get(CounterRow, name, with_for_update=True)
        if row is None:
            row = CounterRow(name=name, value=0)
        else:
            row.value += 1
        value = row.value
        session.add(row)
        session.commit()
    return value
