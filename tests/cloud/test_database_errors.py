"""A database the cloud cannot use stops the command at once with one line naming the setting and
what to do, exit status 2: no traceback, no migration log before it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from depotwatch.cli import app
from depotwatch.embedded_broker import free_port
from tests.conftest import DATABASE_ENV, EXAMPLE_LAYOUT

VARIABLE = "DEPOTWATCH_CLOUD_DATABASE_URL"


def _config(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "cloud.yaml"
    path.write_text(f"layout: {EXAMPLE_LAYOUT}\ndatabase_url: '{database_url}'\n")
    return path


# Some of these tests read DEPOTWATCH_TEST_DATABASE_URL themselves: they run in CI's second pass.
pytestmark = pytest.mark.servers


def _create_key(config: Path, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["cloud", "keys", "create", "--role", "viewer", "--config", str(config)], env=env
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def _postgres() -> str:
    url = os.environ.get(DATABASE_ENV, "")
    if not url.startswith("postgresql"):
        pytest.skip(f"needs a PostgreSQL server: set {DATABASE_ENV} (CI's second pass does)")
    return url


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        (
            "postgres://depot@db.example:5432/depotwatch",
            r"database_url: write 'postgresql\+psycopg://depot@db\.example:5432/depotwatch': the PostgreSQL "
            r"driver is psycopg \(3\), not 'postgres'",
        ),
        ("postgresql://depot@db.example/depotwatch", r"database_url: write 'postgresql\+psycopg://"),
        (
            "mysql://depot@db.example/depotwatch",
            r"database_url: 'mysql' databases are not supported; use sqlite",
        ),
        ("depotwatch.sqlite", r"database_url: 'depotwatch.sqlite' is not a database URL; e\.g\. sqlite:///"),
    ],
)
def test_a_url_the_cloud_cannot_use_is_refused_with_the_fix(
    tmp_path: Path, database_url: str, expected: str
) -> None:
    status, output = _create_key(_config(tmp_path, database_url))
    assert status == 2
    (line,) = output.strip().splitlines()
    assert re.search(expected, line), line
    assert line.startswith(f"{tmp_path / 'cloud.yaml'}: database_url: ")


def test_a_port_where_nothing_listens_names_the_setting(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://depot:s3cret@127.0.0.1:{free_port()}/depotwatch"
    status, output = _create_key(_config(tmp_path, "sqlite:///unused.sqlite"), **{VARIABLE: url})
    assert status == 2
    (line,) = output.strip().splitlines()
    assert line.startswith(
        "database_url: cannot use the database at postgresql+psycopg://depot:***@127.0.0.1:"
    )
    assert "Connection refused; is PostgreSQL running and listening on that host and port?" in line
    assert "s3cret" not in output


def test_a_host_that_does_not_resolve_names_the_setting(tmp_path: Path) -> None:
    url = "postgresql+psycopg://depot@no-such-host.invalid/depotwatch"
    status, output = _create_key(_config(tmp_path, url))
    (line,) = output.strip().splitlines()
    assert status == 2 and line.startswith("database_url: cannot use the database at ")
    assert "failed to resolve host 'no-such-host.invalid'" in line and line.endswith("check the host name")


def test_a_database_that_does_not_exist_names_the_setting(tmp_path: Path) -> None:
    missing = (
        make_url(_postgres()).set(database="depotwatch_no_such_db").render_as_string(hide_password=False)
    )
    status, output = _create_key(_config(tmp_path, missing))
    (line,) = output.strip().splitlines()
    assert status == 2
    assert line.endswith(
        'database "depotwatch_no_such_db" does not exist; '
        "create it (e.g. `createdb`) or correct the name in the URL"
    )


def test_a_sqlite_file_in_a_folder_that_cannot_be_made_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder would be")
    status, output = _create_key(_config(tmp_path, f"sqlite:///{blocker}/cloud.sqlite"))
    (line,) = output.strip().splitlines()
    assert status == 2 and line.startswith("database_url: ") and str(blocker) in line


def test_a_sqlite_file_that_cannot_be_opened_says_what_sqlite_needs(tmp_path: Path) -> None:
    """The folder exists but the file's name is taken by a folder: SQLite cannot open it, and the hint
    is SQLite's, not PostgreSQL's `createdb`."""
    taken = tmp_path / "cloud.sqlite"
    taken.mkdir()
    status, output = _create_key(_config(tmp_path, f"sqlite:///{taken}"))
    (line,) = output.strip().splitlines()
    assert status == 2 and line.startswith("database_url: "), line
    assert line.endswith("unable to open database file; the SQLite file's folder must exist and be writable")
