"""A pytest plugin for CI: a skip that was not expected fails the run.

DEPOTWATCH_EXPECTED_SKIPS names a file of regular expressions, one per line (`#` starts a comment);
every skip's reason must match one of them, or the session fails listing the skips that did not. A
test meant to run in CI that quietly skips (a tool .ci/run forgot to install) is then a failure, not
a dot that never ran. Without the variable (a developer's `make test`) skips are only reported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ENV = "DEPOTWATCH_EXPECTED_SKIPS"


def _allowed() -> list[re.Pattern[str]] | None:
    path = os.environ.get(ENV)
    if not path:
        return None
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [re.compile(line) for line in lines if line]


class SkipGate:
    """Collects the session's skips; fails it at the end if one was not expected."""

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and isinstance(report.longrepr, tuple):
            self.skipped.append((report.nodeid, str(report.longrepr[2]).removeprefix("Skipped: ")))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        allowed = _allowed()
        if allowed is None:
            return
        unexpected = [(test, why) for test, why in self.skipped if not any(p.search(why) for p in allowed)]
        if unexpected:
            lines = "\n".join(f"  {test}: {why}" for test, why in unexpected)
            session.config.get_terminal_writer().line(
                f"\n{len(unexpected)} skip(s) not expected here ({os.environ[ENV]}):\n{lines}", red=True
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGate(), "depotwatch-expected-skips")
