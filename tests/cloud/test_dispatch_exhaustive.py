"""The cloud's ingest dispatches every message of the contract: one added to `shared.messages.Message`
without a case in `cloud.ingest` fails mypy (at its `assert_never`), before any cloud meets it as a
dead letter. Checked on a copy of `shared/` and `cloud/`, the working tree untouched."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# Two mypy runs over the ingest and what it imports: about 8 s, most of it the first run's cache.
pytestmark = pytest.mark.slow

# The contract's union of messages, on one line.
UNION = re.compile(r"^Message = (?P<members>.+)$", re.MULTILINE)
NOVEL = '''class Novel(StrictModel):
    """A message added to the contract that the cloud was never taught."""

    schema_version: SchemaVersion = schema_version_field()


'''


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the runs, so the second checks only what differs from the first."""
    return tmp_path_factory.mktemp("mypy-cache")


def _copy(root: Path) -> Path:
    for package in ("shared", "cloud"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _mypy(root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """mypy with the project's settings on the ingest; errors in what it imports are not reported, so
    this is about the dispatch, not about another module being edited."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--follow-imports=silent",
            "--cache-dir",
            str(cache),
            "cloud/ingest.py",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_ingest_as_it_is_handles_every_message(tmp_path: Path, mypy_cache: Path) -> None:
    result = _mypy(_copy(tmp_path), mypy_cache)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_message_added_to_the_contract_without_a_case_fails_mypy(tmp_path: Path, mypy_cache: Path) -> None:
    root = _copy(tmp_path)
    messages = root / "shared" / "messages.py"
    text = messages.read_text()
    assert len(UNION.findall(text)) == 1, "shared/messages.py no longer declares `Message = ...` on one line"
    messages.write_text(UNION.sub(lambda m: f"{NOVEL}Message = {m['members']} | Novel", text))
    result = _mypy(root, mypy_cache)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r'^cloud/ingest\.py:\d+: error: Argument 1 to "assert_never" has incompatible type "Novel"',
        result.stdout,
        re.MULTILINE,
    ), result.stdout
