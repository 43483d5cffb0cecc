"""`depotwatch demo`: a whole depot on this machine — a broker, the cloud service, and the edge nodes
of a layout on simulated cameras — each edge node and the cloud in a process of its own, supervised:
one that dies is started again, and the others carry on, as on a real site.

Ctrl-C (or SIGTERM) stops everything: edge nodes first, then the cloud, then the broker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from cloud import readiness
from depotwatch.embedded_broker import EmbeddedBroker, free_port
from shared.errors import DepotwatchError
from shared.layout import Facility, load_facility
from sim.scenario import Scenario
from sim.world import World

log = logging.getLogger(__name__)

# A child that dies is restarted after this long, doubling up to the maximum while it keeps dying.
RESTART_BACKOFF_S = (1.0, 30.0)
# Children get this long to stop after SIGTERM before they are killed.
STOP_GRACE_S = 15.0
# Wall seconds from start to the scenario's first movement in view: the nodes are up by then.
LEAD_BEFORE_FIRST_MOVE_S = 45.0
# How long a consumer (the cloud, the recognition worker, which loads its models first) may take to
# say it is subscribed before the demo gives up on it.
READY_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1  # prctl(2)
MOSQUITTO_CONF = (
    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    # Never drop QoS 1 messages queued for a slow subscriber (Mosquitto's default keeps 1000).
    "max_queued_messages 0\nmax_inflight_messages 0\n"
)


class DemoError(DepotwatchError):
    """The demo cannot start: bad option, port taken, layout invalid."""


@dataclass(frozen=True)
class DemoOptions:
    """What `depotwatch demo` was asked for."""

    layout: Path
    workdir: Path
    nodes: int | None = None  # first N nodes of the layout; all when None
    cameras_per_node: int | None = None  # first N cameras of each node; all when None
    speed: float = 10.0  # simulation seconds per wall second
    sim_start_s: float | None = None  # simulation second shown at start; before the first move when None
    sample_fps: float = 1.0
    broker_url: str | None = None  # an external broker instead of one started here
    database_url: str | None = None  # e.g. PostgreSQL instead of the SQLite file in workdir
    port: int = 8000
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class DemoUrls:
    """What a person opens."""

    map: str
    docs: str
    viewer_key: str
    admin_key: str
    broker: str


def first_move_s(
    facility: Facility, scenario: Scenario, tracks: set[str], step_s: float = 5.0
) -> float | None:
    """Simulation second of the scenario's first locomotive movement on `tracks` (None if none)."""
    world = World(facility, scenario)
    t = 0.0
    while t < world.horizon_s:
        if any(loco.moving and loco.track_id in tracks for loco in world.locos_at(t)):
            return t
        t += step_s
    return None


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the demo dies, so a demo killed outright
    leaves no process behind (its children are in sessions of their own, out of reach of Ctrl-C)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class _Child:
    """A supervised process: restarted with backoff when it dies unasked. In a session of its own, so
    the Ctrl-C a terminal sends to its foreground group reaches only the demo, which stops the
    children in order (producers, consumers, broker)."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._backoff = RESTART_BACKOFF_S[0]
        self._restart_at = 0.0

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if self.env is None else {**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        log.info("demo: started %s (pid %d), log %s", self.name, self.process.pid, self.log_path)

    def check(self) -> None:
        """Restart the process if it died (after its backoff)."""
        if self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if self._restart_at == 0.0:
            log.error(
                "demo: %s exited with %s; restarting in %.0f s (see %s)",
                self.name,
                self.process.returncode,
                self._backoff,
                self.log_path,
            )
            self._restart_at = now + self._backoff
            self._backoff = min(self._backoff * 2, RESTART_BACKOFF_S[1])
        elif now >= self._restart_at:
            self._restart_at = 0.0
            self.restarts += 1
            self.start()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("demo: %s did not stop in time; killing it", self.name)
            self.process.kill()
            self.process.wait(5)


class Demo:
    """Starts, supervises and stops the demo's parts."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.facility = load_facility(options.layout)
        nodes = sorted(self.facility.nodes)
        if options.nodes is not None and not 1 <= options.nodes <= len(nodes):
            raise DemoError(f"--nodes must be between 1 and {len(nodes)} for {options.layout}")
        self.nodes = nodes[: options.nodes] if options.nodes else nodes
        self.workdir = options.workdir
        self._broker: EmbeddedBroker | None = None
        self._mosquitto: subprocess.Popen[bytes] | None = None
        self._children: list[_Child] = []
        self._ready_dir: Path | None = None
        self.urls: DemoUrls | None = None

    # start ---------------------------------------------------------------------------------

    def start(self) -> DemoUrls:
        """Start everything; returns the URLs and keys to print."""
        if _port_taken(self.options.host, self.options.port):
            raise DemoError(f"port {self.options.port} is taken; choose another with --port")
        if self.workdir.exists():
            shutil.rmtree(self.workdir)  # a demo starts from an empty depot history
        self.workdir.mkdir(parents=True)
        broker_url = self.options.broker_url or self._start_broker()
        database_url = self.options.database_url or f"sqlite:///{self.workdir / 'cloud.sqlite'}"
        viewer, admin = _make_keys(database_url)
        epoch = self._epoch()
        cloud_yaml = self._write(
            "cloud.yaml",
            {
                "layout": str(self.options.layout),
                "database_url": database_url,
                "broker": {"url": broker_url},
                # Fixed ids with persistent sessions: on a broker that keeps sessions, what is sent
                # while a consumer restarts waits for it.
                "ingest": {"client_id": f"depotwatch-demo-{self.facility.site}-cloud"},
                "recognition": {"client_id": f"depotwatch-demo-{self.facility.site}-recognition"},
                "api": {"host": self.options.host, "port": self.options.port},
            },
        )
        # Consumers before producers: nothing an edge node sends finds no subscriber.
        self._spawn_ready("cloud", ["cloud", "run", "--config", str(cloud_yaml)])
        self._spawn_ready("recognition", ["cloud", "recognise", "--config", str(cloud_yaml)])
        for index, node in enumerate(self.nodes):
            self._spawn(
                node, ["edge", "run", "--config", str(self._edge_yaml(node, index, broker_url, epoch))]
            )
        base = f"http://{self.options.host}:{self.options.port}"
        self.urls = DemoUrls(f"{base}/#key={viewer}", f"{base}/docs", viewer, admin, broker_url)
        return self.urls

    def _start_broker(self) -> str:
        mosquitto = shutil.which("mosquitto")
        if mosquitto:
            port = 1883 if not _port_taken("127.0.0.1", 1883) else free_port()
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(MOSQUITTO_CONF.format(port=port))
            self._mosquitto = subprocess.Popen(
                [mosquitto, "-c", str(conf)],
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            deadline = time.monotonic() + 5
            while not _port_taken("127.0.0.1", port):
                if self._mosquitto.poll() is not None or time.monotonic() > deadline:
                    raise DemoError(f"mosquitto did not start on port {port}")
                time.sleep(0.05)
            log.info("demo: Mosquitto on port %d", port)
            return f"mqtt://127.0.0.1:{port}"
        self._broker = EmbeddedBroker().start()
        log.info("demo: no mosquitto installed; embedded broker on %s", self._broker.url)
        return self._broker.url

    def _epoch(self) -> datetime:
        """Wall time of simulation second 0, shared by every node so they show one world."""
        start_s = self.options.sim_start_s
        if start_s is None:
            tracks = {
                self.facility.cameras[c].track for n in self.nodes for c in self.facility.cameras_of_node(n)
            }
            move = first_move_s(self.facility, Scenario(), tracks)
            start_s = max((move or 0.0) - LEAD_BEFORE_FIRST_MOVE_S * self.options.speed, 0.0)
        return datetime.now(UTC) - timedelta(seconds=start_s / self.options.speed)

    def _edge_yaml(self, node: str, index: int, broker_url: str, epoch: datetime) -> Path:
        cameras = sorted(self.facility.cameras_of_node(node))
        keep = cameras[: self.options.cameras_per_node] if self.options.cameras_per_node else cameras
        return self._write(
            f"{node}.yaml",
            {
                "node_id": node,
                "layout": str(self.options.layout),
                "broker": {"url": broker_url},
                "spool": {"path": str(self.workdir / node / "spool.sqlite")},
                "capture": {
                    "defaults": {"sample_fps": self.options.sample_fps},
                    "cameras": {cid: {"enabled": False} for cid in cameras if cid not in keep},
                },
                "sim": {"speed": self.options.speed, "epoch": epoch.isoformat()},
                "metrics": {"host": "127.0.0.1", "port": 9108 + index},
            },
        )

    def _write(self, name: str, data: dict[str, object]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> _Child:
        argv = [sys.executable, "-m", "depotwatch.cli", *args]
        child = _Child(name, argv, self.workdir / f"{name}.log", env)
        child.start()
        self._children.append(child)
        return child

    def _spawn_ready(self, name: str, args: list[str]) -> None:
        """Start a consumer and wait until it says it is subscribed (cloud.readiness)."""
        if self._ready_dir is None:
            # Short: a Unix socket's path is limited to about 100 bytes.
            self._ready_dir = Path(tempfile.mkdtemp(prefix="depotwatch-demo-"))
        path = self._ready_dir / f"{name}.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(0.5)
            child = self._spawn(name, args, {readiness.ENV: str(path)})
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    if b"READY=1" in sock.recv(256):
                        break
                except TimeoutError:
                    pass
                if child.process is not None and child.process.poll() is not None:
                    raise DemoError(
                        f"the {name} process exited with {child.process.returncode}: see {child.log_path}"
                    )
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the {name} process did not subscribe within {READY_TIMEOUT_S:.0f} s: "
                        f"see {child.log_path}"
                    )
        path.unlink(missing_ok=True)
        child.env = None  # a restart is not waited for: the others run meanwhile
        log.info("demo: %s is subscribed", name)

    # run and stop ----------------------------------------------------------------------------

    def supervise(self, stop: threading.Event) -> None:
        """Restart what dies until `stop` is set."""
        while not stop.wait(1.0):
            for child in self._children:
                child.check()

    def stop(self) -> None:
        """Edge nodes first (their last detections reach the cloud), then the cloud, then the broker."""
        cloud = ("cloud", "recognition")
        edges = [c for c in self._children if c.name not in cloud]
        for group in (edges, [c for c in self._children if c.name in cloud]):
            for child in group:
                child.terminate()
            deadline = time.monotonic() + STOP_GRACE_S
            for child in group:
                child.wait(deadline)
        if self._mosquitto is not None:
            self._mosquitto.terminate()
            self._mosquitto.wait(5)
        if self._broker is not None:
            self._broker.stop()
        if self._ready_dir is not None:
            shutil.rmtree(self._ready_dir, ignore_errors=True)
        log.info("demo: stopped")


def _make_keys(database_url: str) -> tuple[str, str]:
    from cloud.auth import Role, create_key  # the cloud's packages load only when the demo runs
    from cloud.db.engine import open_database

    engine = open_database(database_url, setting="--database-url")
    try:
        return create_key(engine, Role.VIEWER, "demo map"), create_key(engine, Role.ADMIN, "demo admin")
    finally:
        engine.dispose()


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
