"""A subscriber that records and decodes everything under a site, for tests and benchmarks."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from shared.codec import decode_message
from shared.messages import Message
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic


class Collector:
    """Subscribes to a site's whole tree and decodes everything it receives."""

    def __init__(self, url: str, site: str) -> None:
        self.messages: list[tuple[Topic, Message]] = []
        self.malformed: list[str] = []
        self._lock = threading.Lock()
        self.link = MqttConnection(BrokerConfig(url=url), f"collector-{uuid.uuid4().hex[:6]}")
        self.link.subscribe(f"depotwatch/v1/{site}/#", self._on_message)
        self.link.start()
        assert self.link.wait_connected(5) and self.link.wait_subscribed(5)

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            parsed = decode_message(topic, payload)
        except Exception as exc:
            self.malformed.append(f"{topic}: {exc}")
            return
        with self._lock:
            self.messages.append(parsed)

    def of(self, kind: type[Any]) -> list[Any]:
        with self._lock:
            return [m for _, m in self.messages if isinstance(m, kind)]

    def stop(self) -> None:
        self.link.stop()
