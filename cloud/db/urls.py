"""Which database URLs the cloud accepts, with the fix for the common wrong ones."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

EXAMPLES = "sqlite:///var/cloud/depotwatch.sqlite or postgresql+psycopg://user@host:5432/depotwatch"
# psycopg (3) is the PostgreSQL driver installed; SQLAlchemy's default for a bare postgresql:// is
# psycopg2, which is not, and `postgres://` (Heroku's and libpq's spelling) is no SQLAlchemy dialect.
SUPPORTED = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}


def check_database_url(url: str) -> str:
    """`url` if the cloud can use it; raises ValueError saying what to write instead."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{url!r} is not a database URL; e.g. {EXAMPLES}") from None
    if parsed.drivername in SUPPORTED:
        return url
    if parsed.get_backend_name() in {"postgres", "postgresql"}:
        fixed = parsed.set(drivername="postgresql+psycopg")
        raise ValueError(
            f"write {shown(fixed)!r}: the PostgreSQL driver is psycopg (3), not {parsed.drivername!r}"
        )
    raise ValueError(f"{parsed.drivername!r} databases are not supported; use {EXAMPLES}")


def shown(url: str | URL) -> str:
    """A URL as it may be printed: any password masked."""
    return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
