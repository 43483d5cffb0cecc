"""Telling a database that is away from one that refuses the data: the first is waited for (nothing
is lost, the write is retried), the second costs only the data it refused (a dead letter, a log line).

A transient error (connection refused or lost, a lock, a full disk, a timeout) means away; so does any
other error while the database does not answer a ping, as a driver may report a broken connection as
something else. Anything else, from a database that answers, is a refusal of this data.
"""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy import exc as sa_exc

_TRANSIENT = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)


def database_away(engine: Engine, exc: BaseException) -> bool:
    """Whether `exc` means the database is away (retry later) rather than refusing the data."""
    if isinstance(exc, _TRANSIENT) or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated):
        return True
    return not answers(engine)


def answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query now."""
    return why_not_answering(engine) is None


def why_not_answering(engine: Engine) -> str | None:
    """None when the database answers a trivial query now, else the reason it does not."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return reason(exc)
    return None


def reason(exc: BaseException) -> str:
    """The database's own message, on one line."""
    inner = getattr(exc, "orig", None) or exc
    return " ".join(f"{type(inner).__name__}: {inner}".split())[:500]
