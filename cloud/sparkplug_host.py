"""The cloud as Sparkplug B 3.0's primary host application: its STATE on `spBv1.0/STATE/<host_id>`,
retained at QoS 1, online once its session is up and offline as its MQTT Will, both with the timestamp
taken before that session's CONNECT; an offline STATE of its own id seen while it is up (the late Will
of an earlier session) is answered with the online one again. Edge nodes configured with this host id
hold their births and their spools while it is offline. The cloud reads nothing of the Sparkplug
namespace: the edge's JSON contract stays the system's own."""

from __future__ import annotations

import logging
import threading

from shared.errors import ContractError
from shared.mqtt import BrokerConfig, MqttConnection, Will
from shared.sparkplug.host_state import HostState
from shared.sparkplug.payload import now_ms
from shared.sparkplug.topics import state_topic

log = logging.getLogger(__name__)


class PrimaryHost:
    """The host's STATE over an MQTT session of its own; `start()` connects, `stop()` publishes the
    offline STATE and disconnects."""

    def __init__(self, broker: BrokerConfig, host_id: str, client_id: str) -> None:
        self.host_id = host_id
        self.topic = state_topic(host_id)
        self._timestamp_ms = 0
        self._stopping = threading.Event()  # our own offline STATE comes back to us: not answered
        self.link = MqttConnection(
            broker, client_id, on_connect=self._connected, on_disconnect=self._arm_will
        )
        self.link.subscribe(self.topic, self._on_state)

    def start(self) -> None:
        """Arm the Will of the first session and connect."""
        self._arm_will()
        self.link.start()

    def stop(self) -> None:
        """Say offline (retained), then disconnect cleanly."""
        self._stopping.set()
        if self.link.connected.is_set():
            self._publish(online=False)
        self.link.stop()

    def _arm_will(self) -> None:
        """A new session's timestamp, and its Will (before paho connects again)."""
        self._timestamp_ms = now_ms()
        death = HostState(False, self._timestamp_ms).encode()
        self.link.set_will(Will(self.topic, death, qos=1, retain=True))

    def _connected(self) -> None:
        # The subscription to our own STATE was renewed just before this, on this same connection.
        self._publish(online=True)
        log.info("Sparkplug primary host %s online (STATE on %s)", self.host_id, self.topic)

    def _on_state(self, _topic: str, payload: bytes) -> None:
        try:
            state = HostState.decode(payload)
        except ContractError as exc:
            log.warning("Sparkplug primary host %s: ignored a STATE: %s", self.host_id, exc)
            return
        if not state.online and self.link.connected.is_set() and not self._stopping.is_set():
            log.warning(
                "Sparkplug primary host %s: a STATE says offline (timestamp %d); saying online again",
                self.host_id,
                state.timestamp_ms,
            )
            self._publish(online=True)

    def _publish(self, *, online: bool) -> None:
        # The session's own timestamp, also when saying online again: a newer one would make this
        # session's Will look older than it, and edge nodes would ignore it.
        self.link.publish(self.topic, HostState(online, self._timestamp_ms).encode(), qos=1, retain=True)
