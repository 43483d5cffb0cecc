"""CI fails on a skip it did not expect (tests.expected_skips), and passes on one it did."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.expected_skips import ENV

pytest_plugins = ["pytester"]
SKIPPING = """
import pytest

def test_needs_a_tool():
    pytest.skip("needs frobnicate (sudo make system-deps installs it)")

def test_runs():
    pass
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, allowed: str | None) -> pytest.RunResult:
    pytester.makepyfile(test_sample=SKIPPING)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the plugin is tests.expected_skips of this repository
    if allowed is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        listing = pytester.path / "expected.txt"
        listing.write_text(allowed)
        monkeypatch.setenv(ENV, str(listing))
    return pytester.runpytest_subprocess("-p", "tests.expected_skips", "-p", "no:cacheprovider")


def test_a_skip_not_on_the_list_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, "# only this one\nneeds something else\n")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*1 skip(s) not expected here*", "*test_needs_a_tool: needs frobnicate*"])


def test_a_skip_on_the_list_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        _run(pytester, monkeypatch, "needs frobnicate   # a tool CI lacks on purpose\n").ret
        == pytest.ExitCode.OK
    )


def test_without_a_list_skips_are_only_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(pytester, monkeypatch, None).ret == pytest.ExitCode.OK


def test_the_lists_ci_uses_parse() -> None:
    root = REPO / ".ci"
    for name in ("skips-embedded.txt", "skips-servers.txt"):
        assert (root / name).is_file(), name
