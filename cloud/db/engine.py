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
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cloud.db.urls import check_database_url, shown
from shared.errors import Unavailable

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
# libpq settings (seconds unless named _ms): how long a PostgreSQL connection may take to open, a
# statement to run, and sent data to stay unacknowledged before the connection is dropped.
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
TCP_USER_TIMEOUT_MS = 15_000
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
# How long a caller waits for a pooled connection (all busy) before it is an error.
POOL_TIMEOUT_S = 10


# What to do about the usual reasons a database cannot be opened (matched in the driver's message, in
# this order: SQLite's message also says "database").
HINTS = (
    ("unable to open database file", "the SQLite file's folder must exist and be writable"),
    ("connection refused", "is PostgreSQL running and listening on that host and port?"),
    ("failed to resolve host", "check the host name"),
    ("timeout expired", "no answer: check the host, the port and any firewall between"),
    ("password authentication failed", "check the user name and password"),
    ("role", "check the user name (or create that role)"),
    ("database", "create it (e.g. `createdb`) or correct the name in the URL"),
)


def open_database(url: str, setting: str = "database_url") -> Engine:
    """An engine for `url` with the schema brought up to date. A database that cannot be used raises
    Unavailable: one line naming `setting` (the config key or option that gave the URL) and what to do."""
    try:
        check_database_url(url)
        _sqlite_folder(url)
    except (ValueError, OSError) as exc:
        raise Unavailable(setting, str(exc)) from None
    probe = make_engine(url, probe=True)
    try:
        with probe.connect():
            pass
        upgrade(url)
    except sa_exc.DBAPIError as exc:
        raise Unavailable(setting, f"cannot use the database at {shown(url)}: {_problem(exc)}") from exc
    finally:
        probe.dispose()
    return make_engine(url)


def _problem(exc: sa_exc.DBAPIError) -> str:
    """The driver's reason on one line, with what to do about it."""
    text = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
    text = text.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    hint = next((hint for key, hint in HINTS if key in text.lower()), None)
    return f"{text}; {hint}" if hint else text


def _sqlite_folder(url: str) -> None:
    """A SQLite file's folder is created: a fresh clone has no var/."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def make_engine(url: str, *, probe: bool = False) -> Engine:
    """An engine for a SQLAlchemy URL; SQLite gets WAL and foreign keys. `probe`: no pool and short
    timeouts, for checking whether the database answers."""
    if url.startswith("sqlite"):
        _sqlite_folder(url)
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
    """Libpq timeouts, except those the URL sets itself."""
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
    """Bring the database to the newest schema (`open_database` does, after checking it answers)."""
    _sqlite_folder(url)
    command.upgrade(alembic_config(url), "head")
