"""Bulk insert of observations that skips a (node, seq) already stored, the fastest way each database
offers, returning how many rows were new. Rows carry `extents` already serialised as JSON text.

PostgreSQL: COPY into a per-connection temporary table, then one INSERT ... SELECT ... ON CONFLICT DO
NOTHING. Measured here against psycopg's pipelined executemany of a one-row INSERT (which beat
SQLAlchemy's multi-row VALUES rewrite 3x, that one re-parsing every long statement on the client):
about 20 vs 27 µs per row, and +18 % on the cloud benchmark's end-to-end ingest rate.
SQLite: executemany of the one-row INSERT (sqlite3 is in-process; there is no round trip to save).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, String, TextClause, bindparam, text

from cloud.db.models import ObservationRow

_TABLE = ObservationRow.__table__  # type: ignore[attr-defined]
_COLUMNS = [c for c in _TABLE.columns if c.name != "id"]
_NAMES = [c.name for c in _COLUMNS]
_JSON_COLUMNS = {"extents"}
_STAGING = "observations_incoming"
# A node numbers each flow's detections on its own; this key makes a redelivery a no-op.
_CONFLICT = "ON CONFLICT (flow, node_id, seq) DO NOTHING"


def _executemany_statement() -> TextClause:
    # The table and column names are the model's; the values are bound.
    return text(
        f"INSERT INTO {_TABLE.name} ({', '.join(_NAMES)}) VALUES ({', '.join(':' + n for n in _NAMES)}) "  # noqa: S608
        + _CONFLICT
    ).bindparams(
        *(bindparam(c.name, type_=String() if c.name in _JSON_COLUMNS else c.type) for c in _COLUMNS)
    )


_EXECUTEMANY = _executemany_statement()


def insert_observations(connection: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert rows (dicts keyed by column name) inside the caller's transaction; the count inserted."""
    if connection.dialect.name == "postgresql":
        return _copy_insert(connection, rows)
    return int(connection.execute(_EXECUTEMANY, rows).rowcount)


def _copy_insert(connection: Connection, rows: list[dict[str, Any]]) -> int:
    columns = ", ".join(_NAMES)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (LIKE {_TABLE.name} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    with cursor.copy(f"COPY {_STAGING} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[n] for n in _NAMES])
    # The table and column names are the model's; the rows arrive by COPY, never in the statement.
    cursor.execute(f"INSERT INTO {_TABLE.name} ({columns}) SELECT {columns} FROM {_STAGING} " + _CONFLICT)  # noqa: S608
    return int(cursor.rowcount)
