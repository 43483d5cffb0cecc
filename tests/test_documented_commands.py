"""Every command the README and docs show works from a fresh clone, as a new operator types it.

The clone is the files `git clone` would give (tracked, plus new files not ignored): no var/, no
out/, no built state. Each documented command is listed in DOCUMENTED with how it is tried here; a
command added to the docs and not to the list fails `test_every_documented_command_is_tried`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from depotwatch.cli import app
from depotwatch.embedded_broker import EmbeddedBroker
from tests.conftest import REPO
from tests.waiting import wait_until

BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# How each documented command is tried: "run" (exits 0 in the clone), "serve" (starts and answers
# /healthz, then stops on SIGTERM), "options" (placeholders or a production host's paths: every
# option it names exists), or the test or CI step that runs it.
DOCUMENTED: dict[str, str] = {
    "make demo": "tests/test_demo.py runs `depotwatch demo`",
    "make test": ".ci/run",
    "make lint": ".ci/run",
    "make bench": "benchmark, run by hand: python -m bench.lpe / bench.flows",
    "make train-lpe": "training, run by hand (about 30 minutes)",
    "make mutate": "mutation testing, run by hand: python -m bench.mutate (docs/testing.md)",
    "make mutate MODULE=spool": "mutation testing, run by hand: python -m bench.mutate spool",
    'make demo DEMO_ARGS="--nodes 2 --speed 5"': "options",
    "depotwatch demo": "tests/test_demo.py",
    "depotwatch layout check FILE": "run",
    "depotwatch sim frames --out out/frames": "run",
    "depotwatch sim dataset --out data/lpe --frames 5000": "options",
    "depotwatch edge run --config examples/edge.yaml": "serve",
    "depotwatch edge check": "run",
    "depotwatch edge check /etc/depotwatch/edge.yaml": "options",
    "depotwatch cloud run --config examples/cloud.yaml": "serve",
    "depotwatch cloud recognise": "options",
    "depotwatch cloud recognise --config examples/cloud.yaml": "run until subscribed",
    "depotwatch cloud keys create --role viewer --name map --config examples/cloud.yaml": "run",
    "depotwatch cloud keys create --role admin --name workbench --config examples/cloud.yaml": "run",
    "depotwatch cloud keys revoke PREFIX --config examples/cloud.yaml": "run",
    "depotwatch cloud keys revoke PREFIX": "options",
    "depotwatch cloud opcua-certificate --out var/opcua": "run",
    "depotwatch cloud opcua-certificate --out DIR --host HOST": "options",
    "depotwatch grafana export": "run",
    "depotwatch edge snapshot --config FILE --camera ID --out snap.jpg": "options",
    "depotwatch calibrate fit --image out/frames/T2-C3_day.jpg --points examples/calibration/T2-C3.yaml "
    "--track T2 --camera T2-C3": "run, after sim frames",
    "depotwatch cloud keys create --role viewer --name wallboard --config /etc/depotwatch/cloud.yaml": (
        "options"
    ),
    "depotwatch flow record --config cloud.yaml --flow prod --out monday.dwrec --minutes 60": "options",
    "depotwatch flow replay monday.dwrec --config cloud.yaml --into replay --fast": "options",
    "depotwatch flow promote dev --inventory ansible/inventory.yml": "options",
    "depotwatch flow rollback --inventory ansible/inventory.yml": "options",
    'depotwatch grafana push --url https://grafana.example --token "$GRAFANA_TOKEN"': "options",
}
COMMAND = re.compile(r"^(?:make|depotwatch) [^`|]*$")


def documented_commands() -> set[str]:
    """Commands shown in the docs: inline code and lines of shell blocks that start with depotwatch
    or make."""
    found: set[str] = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                command = line.split("#", 1)[0].strip().removeprefix("$ ")
                if COMMAND.match(command):
                    found.add(command)
        for span in re.findall(r"`([^`\n]+)`", text):
            if COMMAND.match(span.strip()):
                found.add(span.strip())
    return found


def test_every_documented_command_is_tried() -> None:
    untried = sorted(documented_commands() - set(DOCUMENTED))
    assert not untried, f"documented commands this test does not try: {untried}"


@pytest.mark.parametrize("command", sorted(c for c in DOCUMENTED if c.startswith("depotwatch")))
def test_every_option_a_documented_command_names_exists(command: str) -> None:
    words = command.split()[1:]
    group = typer.main.get_command(app)
    while words and hasattr(group, "commands") and words[0] in group.commands:  # type: ignore[attr-defined]
        group = group.commands[words.pop(0)]  # type: ignore[attr-defined]
    assert not hasattr(group, "commands"), f"{command!r} names no command"
    options = {opt for param in group.params for opt in param.opts}
    named = {word for word in words if word.startswith("-")}
    assert named <= options, f"{command!r}: no such option {sorted(named - options)}"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a fresh clone has it (what git tracks, and new files it does not ignore)."""
    out = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = REPO / name.decode()
        if source.is_file():
            (out / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out / name.decode())
    assert not (out / "var").exists()
    return out


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPOTWATCH_EDGE_", "DEPOTWATCH_CLOUD_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return {**env, **overrides}


def _run(clone: Path, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command.split(), cwd=clone, env=_env(**env), capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_keys_are_created_and_revoked_in_a_fresh_clone(clone: Path) -> None:
    created = _run(
        clone, "depotwatch cloud keys create --role viewer --name map --config examples/cloud.yaml"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert re.fullmatch(r"dw_[\w-]{20,}", key), created.stdout
    assert "Traceback" not in created.stderr
    revoked = _run(clone, f"depotwatch cloud keys revoke {key[:12]} --config examples/cloud.yaml")
    assert revoked.returncode == 0, revoked.stderr
    unknown = _run(clone, "depotwatch cloud keys revoke dw_nosuchkey --config examples/cloud.yaml")
    assert unknown.returncode == 2
    assert "no key starts with 'dw_nosuchkey'" in unknown.stderr


@pytest.mark.parametrize(
    "command",
    [
        "depotwatch layout check examples/facility.yaml",
        "depotwatch edge check examples/edge.yaml",
        "depotwatch sim frames --out out/frames",
        "depotwatch grafana export",
        "depotwatch cloud keys create --role admin --name workbench --config examples/cloud.yaml",
    ],
)
def test_a_documented_command_runs_in_a_fresh_clone(clone: Path, command: str) -> None:
    result = _run(clone, command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_snapshot_is_calibrated_from_the_example_marks_in_a_fresh_clone(clone: Path) -> None:
    frames = _run(clone, "depotwatch sim frames --out out/frames")
    assert frames.returncode == 0, frames.stderr
    fitted = _run(
        clone,
        "depotwatch calibrate fit --image out/frames/T2-C3_day.jpg --points examples/calibration/T2-C3.yaml "
        "--track T2 --camera T2-C3",
    )
    assert fitted.returncode == 0, fitted.stdout + fitted.stderr
    assert "accepted" in fitted.stdout
    assert (clone / "out" / "frames" / "T2-C3_day.overlay.png").is_file()


@pytest.fixture
def serving(clone: Path) -> Iterator[dict[str, str]]:
    """Ports and a broker for a service started from the clone. A broker of its own: the example
    configs speak for site depot-north, whose retained births and statuses would otherwise stay on the
    suite's shared broker and reach every later test that subscribes to that site."""
    with EmbeddedBroker() as broker:
        yield {"broker": broker.url, "port": str(_free_port())}


def _serve(clone: Path, command: str, health_url: str, env: dict[str, str]) -> None:
    process = subprocess.Popen(
        command.split(),
        cwd=clone,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{command!r} exited {process.returncode}: {process.stdout.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(health_url, timeout=2) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):  # a 503 too: not healthy yet
                return False

        wait_until(healthy, 90, f"{command!r} to answer /healthz", interval=0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    # uvicorn re-raises the SIGTERM it handled once shut down (systemd and compose count that a clean stop).
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output


def test_the_cloud_runs_from_a_fresh_clone(clone: Path, serving: dict[str, str]) -> None:
    _serve(
        clone,
        "depotwatch cloud run --config examples/cloud.yaml",
        f"http://127.0.0.1:{serving['port']}/healthz",
        {"DEPOTWATCH_CLOUD_BROKER__URL": serving["broker"], "DEPOTWATCH_CLOUD_API__PORT": serving["port"]},
    )


def test_an_edge_node_runs_from_a_fresh_clone(clone: Path, serving: dict[str, str]) -> None:
    _serve(
        clone,
        "depotwatch edge run --config examples/edge.yaml",
        f"http://127.0.0.1:{serving['port']}/healthz",
        {"DEPOTWATCH_EDGE_BROKER__URL": serving["broker"], "DEPOTWATCH_EDGE_METRICS__PORT": serving["port"]},
    )


def test_the_recognition_worker_runs_from_a_fresh_clone_and_says_when_it_is_subscribed(
    clone: Path, serving: dict[str, str]
) -> None:
    ready = Path(tempfile.mkdtemp(prefix="dw-")) / "notify.sock"  # short: a socket path has ~100 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(ready))
        sock.settimeout(120)
        env = _env(DEPOTWATCH_CLOUD_BROKER__URL=serving["broker"], NOTIFY_SOCKET=str(ready))
        process = subprocess.Popen(
            ["depotwatch", "cloud", "recognise", "--config", "examples/cloud.yaml"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert sock.recv(64) == b"READY=1"
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
    shutil.rmtree(ready.parent)
    assert process.returncode == 0, output
    assert "subscribed to the thumbnails; ready" in output and "Traceback" not in output


def test_make_demo_installs_the_runtime_only_and_make_test_the_dev_tools(clone: Path) -> None:
    demo = _run(clone, "make -n demo")
    test = _run(clone, "make -n test")
    assert demo.returncode == 0 and test.returncode == 0, demo.stderr + test.stderr
    assert "pip install --quiet -e ." in demo.stdout and "[dev]" not in demo.stdout, demo.stdout
    assert "-e '.[dev]'" in test.stdout, test.stdout
