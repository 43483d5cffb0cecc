"""Engines and migrations: every database is brought to the latest schema by Alembic at start.

A PostgreSQL engine never waits without bound: connecting, a statement, a connection from the pool
and unacknowledged packets each have a timeout (a setting in the URL's query wins over ours), so a
database that resets or black-holes its connections becomes an error the caller handles, not a
thread that hangs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# libpq settings (seconds unless named _ms): how long a PostgreSQL connection may take to open, a
# statement to run, and sent data to stay unacknowledged before the connection is dropped.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
TCP_USER_TIMEOUT_MS = 15_000
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
# How long a caller waits for a pooled connection (all busy) before it is an error.
POOL_TIMEOUT_S = 10


def make_engine(url: str, *, probe: bool = False) -> Engine:
    """An engine for a SQLAlchemy URL; SQLite gets WAL and foreign keys. `probe`: no pool and short
    timeouts, for checking whether the database answers."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, **({"poolclass": NullPool} if probe else {})
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: object, _record: object) -> None:
            cursor = connection.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if probe:
        return create_engine(url, poolclass=NullPool, connect_args=_postgres_args(url, timeout_s=2))
    return create_engine(
        url, pool_pre_ping=True, pool_timeout=POOL_TIMEOUT_S, connect_args=_postgres_args(url)
    )


def _postgres_args(url: str, timeout_s: int | None = None) -> dict[str, Any]:
    """libpq timeouts, except those the URL sets itself."""
    given = make_url(url).query
    statement_ms = STATEMENT_TIMEOUT_MS if timeout_s is None else timeout_s * 1000
    ours: dict[str, Any] = {
        "connect_timeout": timeout_s or CONNECT_TIMEOUT_S,
        "tcp_user_timeout": TCP_USER_TIMEOUT_MS if timeout_s is None else timeout_s * 1000,
        "options": f"-c statement_timeout={statement_ms}",
        **KEEPALIVES,
    }
    return {key: value for key, value in ours.items() if key not in given}


def alembic_config(url: str) -> Config:
    """Alembic's configuration for a database URL (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database to the newest schema."""
    command.upgrade(alembic_config(url), "head")
