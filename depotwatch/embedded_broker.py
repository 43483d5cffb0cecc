"""An MQTT 3.1.1 broker inside this process (amqtt), for the zero-setup demo and the default test run.

Production uses Mosquitto; amqtt has no MQTT 5 features (shared subscriptions among them), so
components must work with plain subscriptions when they run against it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from amqtt.broker import Broker

from shared.errors import DepotwatchError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 2.0
STOP_TIMEOUT_S = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Runs amqtt on its own event loop in a thread this object owns; `stop()` joins it."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-broker", daemon=True)
        self._broker: Any = None

    @property
    def url(self) -> str:
        """mqtt://host:port of this broker."""
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        """Start listening; raises DepotwatchError if the broker cannot start."""
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(START_TIMEOUT_S)
        except Exception as exc:
            self._halt_loop()
            raise DepotwatchError(f"embedded MQTT broker failed to start on {self.url}: {exc}") from exc
        log.info("embedded MQTT broker listening on %s", self.url)
        return self

    async def _start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config, loop=self._loop)
        await self._broker.start()

    def stop(self) -> None:
        """Deliver what the broker has accepted, shut it down and join its thread.

        amqtt acknowledges a publish before fanning it out and drops its fan-out queue on shutdown;
        waiting for that queue to empty keeps a stop from losing acknowledged messages."""
        if self._broker is not None:
            queue = getattr(self._broker, "_broadcast_queue", None)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while queue is not None and not queue.empty() and time.monotonic() < deadline:
                time.sleep(0.01)
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(STOP_TIMEOUT_S)
            except Exception:
                # amqtt's shutdown can hang on a session waiting for an acknowledgement that its own
                # teardown cancelled; free the port anyway, so a restart can listen on it again.
                log.exception("embedded MQTT broker did not shut down cleanly; closing its listeners")
                self._run(self._close_listeners(), STOP_TIMEOUT_S)
        self._halt_loop()
        log.info("embedded MQTT broker on %s stopped", self.url)

    async def _close_listeners(self) -> None:
        for server in list(getattr(self._broker, "_servers", {}).values()):
            await server.close_instance()

    def _run(self, coroutine: Any, timeout: float) -> None:
        try:
            asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)
        except Exception:
            log.exception("embedded MQTT broker: cleanup step failed")

    def _halt_loop(self) -> None:
        if self._thread.is_alive():
            self._run(_cancel_other_tasks(), STOP_TIMEOUT_S)  # none left pending when the loop closes
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
