"""What a benchmark needs from this machine, checked before it measures anything.

Each benchmark's `main()` first calls `require(...)` with what it needs. Every missing item is printed
on one line with the command that provides it (the packages `.ci/run` installs on CI), and the run ends
with status 2 (`MISSING`) before anything is measured: a machine without, say, GStreamer's RTSP server
gets told so, not a table saying its cameras ran at 0.0 frames per second.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MISSING = 2  # exit status: a prerequisite is missing, nothing was measured
APT = "apt-get install -y"
# What serves the RTSP cameras (tests/rtsp_server.py): a Python with GStreamer's gi bindings, which the
# virtualenv has not; Debian's own by default, another one through this variable.
GST_PYTHON_ENV = "DEPOTWATCH_GST_PYTHON"
GST_PYTHON = "/usr/bin/python3"
GST_PACKAGES = (
    "ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-rtsp"
)
# A probe that takes longer than this (a database that does not answer) counts as missing.
PROBE_TIMEOUT_S = 10


@dataclass(frozen=True)
class Requirement:
    """One thing a benchmark needs: `probe` returns None when it is there, else what is wrong."""

    name: str
    probe: Callable[[], str | None]
    fix: str  # the command (or step) that provides it


def executable(name: str, fix: str) -> Requirement:
    """A program on PATH."""
    return Requirement(name, lambda: None if shutil.which(name) else f"`{name}` is not on PATH", fix)


def gst_python() -> str:
    """The Python that runs tests/rtsp_server.py."""
    return os.environ.get(GST_PYTHON_ENV, GST_PYTHON)


def rtsp_server() -> Requirement:
    """GStreamer's RTSP server, reachable from `gst_python()` as tests/rtsp_server.py imports it."""

    def probe() -> str | None:
        python = gst_python()
        if not Path(python).is_file():
            return f"{python} does not exist (set {GST_PYTHON_ENV} to a Python with GStreamer's gi bindings)"
        code = (
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
        )
        try:
            done = subprocess.run(
                [python, "-c", code], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{python} cannot be run: {exc}"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"{python} cannot import GstRtspServer 1.0: {last}"
        return None

    return Requirement("GStreamer RTSP server", probe, f"{APT} {GST_PACKAGES}")


def files(name: str, paths: list[Path], fix: str) -> Requirement:
    """Files that must exist with real content (not empty, not a Git LFS pointer)."""

    def probe() -> str | None:
        for path in paths:
            if not path.is_file():
                return f"{path} does not exist"
            with path.open("rb") as f:
                head = f.read(64)
            if not head or head.startswith(b"version https://git-lfs"):
                return f"{path} is empty or a Git LFS pointer"
        return None

    return Requirement(name, probe, fix)


def ir_model(xml: Path, fix: str) -> Requirement:
    """An OpenVINO IR: the .xml and its .bin."""
    return files(f"OpenVINO model {xml.stem}", [xml, xml.with_suffix(".bin")], fix)


def postgres(url: str) -> Requirement:
    """A PostgreSQL server that accepts a connection at `url` (an SQLAlchemy URL)."""

    def probe() -> str | None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            return f"{url!r} is not a database URL: {exc}"
        if not parsed.drivername.startswith("postgresql"):
            return f"{url} is not a PostgreSQL URL"
        engine = create_engine(parsed, connect_args={"connect_timeout": PROBE_TIMEOUT_S})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc  # the driver's own words
            first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
            return f"{parsed.render_as_string(hide_password=True)} does not answer: {first}"
        finally:
            engine.dispose()
        return None

    fix = (
        f"{APT} postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n 1) "
        "main start && psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' (as .ci/run does), "
        "or pass --database-url"
    )
    return Requirement("PostgreSQL", probe, fix)


def free_port(port: int, fix: str) -> Requirement:
    """A local TCP port nothing listens on (the benchmark starts its own server there)."""

    def probe() -> str | None:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return f"something already listens on 127.0.0.1:{port}"
        return None

    return Requirement(f"port {port}", probe, fix)


def missing(requirements: list[Requirement]) -> list[str]:
    """One line for each requirement that is not met, naming what to do about it."""
    lines = []
    for requirement in requirements:
        why = requirement.probe()
        if why is not None:
            lines.append(f"missing {requirement.name}: {why}; to fix: {requirement.fix}")
    return lines


def require(bench: str, requirements: list[Requirement]) -> None:
    """Exit with status 2, after a line per missing requirement, unless all of them are met."""
    lines = missing(requirements)
    if not lines:
        return
    for line in lines:
        sys.stderr.write(f"{bench}: {line}\n")
    sys.stderr.write(f"{bench}: nothing was measured\n")
    raise SystemExit(MISSING)
