"""Brokers a test owns: one it may stop and restart (Mosquitto when the suite runs against Mosquitto,
else amqtt), and a private Mosquitto with a configuration of the test's choosing (by default Mosquitto's
own defaults, e.g. `max_inflight_messages 20`, as a depot's stock broker would have)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from depotwatch.embedded_broker import EmbeddedBroker, free_port
from tests.conftest import MQTT_ENV
from tests.waiting import wait_until


class RestartableBroker:
    """Listens on one fixed port across restarts."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._mosquitto = shutil.which("mosquitto") if os.environ.get(MQTT_ENV) else None
        self._conf = workdir / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 0\n"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._embedded: EmbeddedBroker | None = None

    def start(self) -> None:
        if self._mosquitto:
            self._process = subprocess.Popen(
                [self._mosquitto, "-c", str(self._conf)], stderr=subprocess.DEVNULL
            )
            wait_until(self._listening, 5, f"mosquitto on port {self.port}")
        else:
            self._embedded = EmbeddedBroker(port=self.port).start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(5)
            self._process = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        time.sleep(0.2)

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0


class PrivateMosquitto:
    """A Mosquitto of this test's own on a free port, with `settings` added to a bare listener."""

    def __init__(self, workdir: Path, settings: str = "") -> None:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise RuntimeError("Mosquitto is not installed (apt-get install mosquitto; .ci/run does)")
        self.binary = binary
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        # As this user: started as root, Mosquitto would drop to its own, which cannot write here.
        own = f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        self.conf.write_text(own + settings)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateMosquitto:
        self._process = subprocess.Popen([self.binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        wait_until(self._listening, 5, f"mosquitto on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to save anything."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(5)
            self._process = None

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0
