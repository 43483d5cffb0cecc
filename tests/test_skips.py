"""A test skipped on a plain machine says exactly what it needs and how to get it."""

from __future__ import annotations

import ast
import re

from tests.conftest import REPO

# Where a skipped test can be included from: the Debian packages `make system-deps` installs, or the
# servers named by the environment variables of CI's second pass.
HOW = re.compile(r"make system-deps|DEPOTWATCH_TEST_\w+|CI's (second|Mosquitto) pass|amqtt issue")


def _skip_reasons() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            texts = [kw.value for kw in node.keywords if kw.arg == "reason"]
            if name.endswith("skip") and node.args:
                texts.append(node.args[0])
            if name.endswith(("skip", "skipif")):
                found.extend((str(path.relative_to(REPO)), node.lineno, ast.unparse(text)) for text in texts)
    return found


def test_every_skip_says_how_to_include_the_test() -> None:
    reasons = _skip_reasons()
    assert len(reasons) >= 6, "the scan found the suite's skips"
    vague = [f"{path}:{line}: {text}" for path, line, text in reasons if not HOW.search(text)]
    assert not vague, "skips that do not say how to include the test:\n" + "\n".join(vague)


def test_the_makefile_installs_every_package_a_skip_names() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    packages = set(
        re.search(r"SYSTEM_PACKAGES :=(.*?)\n\n", makefile, re.S).group(1).replace("\\", " ").split()
    )  # type: ignore[union-attr]
    for tool in ("ffmpeg", "chromium", "mosquitto", "openssl", "systemd", "gir1.2-gst-rtsp-server-1.0"):
        assert tool in packages, tool
