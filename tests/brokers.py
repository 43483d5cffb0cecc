"""A broker a test may stop and restart: Mosquitto when the suite runs against Mosquitto, else amqtt."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from shared.embedded_broker import EmbeddedBroker, free_port
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
