"""A Sparkplug B 3.0 edge node on an MQTT session of its own, as the specification's chapter 5 has it:
the edge boxes run one for their cameras, the cloud one for the facility.

- The session's Will is the NDEATH, carrying the `bdSeq` drawn for that CONNECT (0–255, one more per
  connect, from a counter the owner keeps across restarts); the NBIRTH carries the same `bdSeq`.
- NBIRTH at `seq` 0, then a DBIRTH per device; every later message takes the next `seq` (mod 256), an
  NDEATH none. NBIRTH, DBIRTH, NDATA, DDATA and DDEATH go at QoS 0, the NDEATH at QoS 1, none retained.
- Report by exception: each `interval_s` the owner's `report()` is read; a changed value goes out in an
  NDATA or DDATA holding only what changed, a device that appeared gets its DBIRTH, one that went its
  DDEATH, and a device whose set of metrics changed (a locomotive arrived on a track) is born again.
- `Node Control/Rebirth` in an NCMD: the whole birth again, same `bdSeq`.
- With a primary host configured: no birth until its STATE (`spBv1.0/STATE/<host>`) says online, a STATE
  older than the last one seen ignored, and on an offline STATE an NDEATH, a clean disconnect and a new
  session that again waits for the host. The owner is told whenever the host goes on- or offline (the
  edge holds its spool meanwhile).

All of it runs on one thread this object owns; MQTT callbacks only queue events for it (and, on a
disconnect, arm the next session's Will, which must be in place before paho connects again)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, auto

from shared.errors import ContractError
from shared.mqtt import BrokerConfig, MqttConnection, Will
from shared.sparkplug.host_state import HostState
from shared.sparkplug.payload import DataType, Metric, MetricValue, decode_payload, encode_payload, now_ms
from shared.sparkplug.topics import MessageType, node_topic, state_topic

log = logging.getLogger(__name__)

REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
# How long the NDEATH before a deliberate disconnect may take to reach the broker.
DEATH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class NodeReport:
    """What a node reports now: its own metrics and each device's, by name."""

    metrics: Mapping[str, Metric]
    devices: Mapping[str, Mapping[str, Metric]] = field(default_factory=dict)


def metrics(*items: Metric) -> dict[str, Metric]:
    """Metrics by name."""
    return {m.name: m for m in items}


class _Event(Enum):
    CONNECTED = auto()
    DISCONNECTED = auto()
    HOST = auto()
    REBIRTH = auto()


@dataclass(frozen=True)
class SparkplugStatus:
    """Where the node's session stands (for /healthz)."""

    connected: bool
    born: bool
    bd_seq: int
    primary_host_id: str | None
    primary_host_online: bool | None  # None: no primary host configured

    def as_dict(self) -> dict[str, object]:
        """The status as /healthz shows it."""
        return {
            "connected": self.connected,
            "born": self.born,
            "bd_seq": self.bd_seq,
            "primary_host": None
            if self.primary_host_id is None
            else {"id": self.primary_host_id, "online": self.primary_host_online},
        }


class SparkplugEdgeNode:
    """One Sparkplug edge node; `start()` connects in the background, `stop()` publishes the NDEATH and
    disconnects."""

    def __init__(
        self,
        *,
        broker: BrokerConfig,
        client_id: str,
        group_id: str,
        node_id: str,
        report: Callable[[], NodeReport],
        next_bd_seq: Callable[[], int],
        primary_host_id: str | None = None,
        interval_s: float = 1.0,
        on_host: Callable[[bool], None] | None = None,
    ) -> None:
        self.group_id = group_id
        self.node_id = node_id
        self.primary_host_id = primary_host_id
        self.interval_s = interval_s
        self._report = report
        self._next_bd_seq = next_bd_seq
        self._on_host = on_host
        self._bd_lock = threading.Lock()
        self._bd_seq = -1
        self._seq = 0
        self._born: NodeReport | None = None  # what the subscribers know, since the last birth
        self._host: HostState | None = None  # the newest STATE seen
        self._session_up = False  # this thread handled the connect of the current session
        self._host_heard = False  # a STATE arrived in the current session
        self._events: queue.SimpleQueue[tuple[_Event, object]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.link = MqttConnection(
            broker,
            client_id,
            on_connect=lambda: self._events.put((_Event.CONNECTED, None)),
            on_disconnect=self._disconnected,
        )
        self.link.subscribe(self._topic(MessageType.NCMD), self._on_command)
        if primary_host_id is not None:
            self.link.subscribe(state_topic(primary_host_id), self._on_state)
        self.thread = threading.Thread(target=self._loop, name=f"sparkplug-{node_id}", daemon=True)

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Draw the first session's bdSeq, arm its Will, connect and start the thread."""
        self._arm_will()
        self.link.start()
        self.thread.start()

    def stop(self) -> None:
        """Join the thread; when born, publish the NDEATH; disconnect cleanly."""
        self._stop.set()
        self.thread.join(10)
        if self._born is not None and self.link.connected.is_set():
            self._publish_death()
        self.link.stop()

    @property
    def alive(self) -> bool:
        """Whether the node's thread runs (false once stopped, or if it died)."""
        return self.thread.is_alive()

    @property
    def host_online(self) -> bool:
        """Whether the primary host is online (always true when none is configured)."""
        return self.primary_host_id is None or (self._host is not None and self._host.online)

    def status(self) -> SparkplugStatus:
        """Where the session stands."""
        return SparkplugStatus(
            connected=self.link.connected.is_set(),
            born=self._born is not None,
            bd_seq=self._bd_seq,
            primary_host_id=self.primary_host_id,
            primary_host_online=None if self.primary_host_id is None else self.host_online,
        )

    # MQTT callbacks (paho's thread, or the link's handler thread) ------------------------------

    def _disconnected(self) -> None:
        if not self._stop.is_set():
            self._arm_will()  # here, before paho connects again
        self._events.put((_Event.DISCONNECTED, None))

    def _arm_will(self) -> None:
        with self._bd_lock:
            previous = self._bd_seq
            try:
                self._bd_seq = self._next_bd_seq() % 256
            except Exception:  # the owner's counter store is down: the session still needs a new one
                log.exception("Sparkplug node %s: could not draw the next bdSeq; counting on", self.node_id)
                self._bd_seq = (previous + 1) % 256
            death = encode_payload(
                [Metric(BD_SEQ, DataType.INT64, self._bd_seq)], timestamp_ms=now_ms(), seq=None
            )
        self.link.set_will(Will(self._topic(MessageType.NDEATH), death, qos=1, retain=False))

    def _on_state(self, topic: str, payload: bytes) -> None:
        try:
            self._events.put((_Event.HOST, HostState.decode(payload)))
        except ContractError as exc:
            log.warning("Sparkplug node %s: ignored a STATE on %s: %s", self.node_id, topic, exc)

    def _on_command(self, topic: str, payload: bytes) -> None:
        try:
            command = decode_payload(payload)
        except ContractError as exc:
            log.warning("Sparkplug node %s: ignored an NCMD: %s", self.node_id, exc)
            return
        for metric in command.metrics:
            if metric.name == REBIRTH and metric.value is True:
                self._events.put((_Event.REBIRTH, None))
            else:
                log.warning(
                    "Sparkplug node %s: ignored NCMD metric %r (the node takes only %s)",
                    self.node_id,
                    metric.name,
                    REBIRTH,
                )

    # the node's thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        next_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                kind, value = self._events.get(timeout=max(0.0, min(next_poll - time.monotonic(), 0.2)))
            except queue.Empty:
                pass
            else:
                self._handle(kind, value)
                continue
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.interval_s
                if not self.link.connected.is_set():
                    continue
                if self._born is not None:
                    self._safely(self._report_changes)
                elif self._may_birth():  # a birth that failed (a report that raised) is tried again
                    self._safely(self._birth)

    def _handle(self, kind: _Event, value: object) -> None:
        match kind:
            case _Event.CONNECTED:
                self._session_up = True
                if self._may_birth():
                    self._safely(self._birth)
                # else: the STATE, retained, arrives with the renewed subscription
            case _Event.DISCONNECTED:
                # Only this thread writes these, so a pass under way cannot undo it.
                self._born, self._session_up, self._host_heard = None, False, False
            case _Event.HOST if isinstance(value, HostState):
                self._host_state(value)
            case _Event.REBIRTH:
                if self._born is not None:
                    log.info("Sparkplug node %s: rebirth requested", self.node_id)
                    self._safely(self._birth)

    def _host_state(self, state: HostState) -> None:
        if self._host is not None and state.timestamp_ms < self._host.timestamp_ms:
            log.info("Sparkplug node %s: ignored a STATE older than the last one seen", self.node_id)
            return
        was_online = self.host_online
        self._host = state
        self._host_heard = True
        if was_online != state.online:
            log.info(
                "Sparkplug node %s: primary host %s is %s",
                self.node_id,
                self.primary_host_id,
                "online" if state.online else "offline",
            )
            callback = self._on_host
            if callback is not None:
                self._safely(lambda: callback(state.online))
        if self._born is None and self._may_birth():
            self._safely(self._birth)
        elif not state.online and self._born is not None:
            # The specification: publish the NDEATH, disconnect, and start over (waiting for the host).
            self._publish_death()
            self._born = None
            # Queues DISCONNECTED, then CONNECTED; no new session once stopping (its Will is not armed).
            self.link.reconnect(DEATH_TIMEOUT_S, connect_again=lambda: not self._stop.is_set())

    def _may_birth(self) -> bool:
        """Whether this session may be born: it is up and, with a primary host, a STATE heard in it
        says the host is online."""
        if not self._session_up or not self.link.connected.is_set():
            return False
        return self.primary_host_id is None or (self._host_heard and self.host_online)

    def _birth(self) -> None:
        report = self._report()
        self._seq = 0
        node = [
            Metric(BD_SEQ, DataType.INT64, self._bd_seq),
            Metric(REBIRTH, DataType.BOOLEAN, False),
            *report.metrics.values(),
        ]
        self._send(MessageType.NBIRTH, node)
        for device, device_metrics in report.devices.items():
            self._send(MessageType.DBIRTH, device_metrics.values(), device)
        self._born = report
        log.info(
            "Sparkplug node %s: born (bdSeq %d, %d devices)", self.node_id, self._bd_seq, len(report.devices)
        )

    def _report_changes(self) -> None:
        born = self._born
        if born is None:
            return
        report = self._report()
        if set(report.metrics) != set(born.metrics):
            self._birth()
            return
        changed = _changed(born.metrics, report.metrics)
        if changed:
            self._send(MessageType.NDATA, changed)
        for device in born.devices.keys() - report.devices.keys():
            self._send(MessageType.DDEATH, [], device)
        for device, now in report.devices.items():
            before = born.devices.get(device)
            if before is None or set(before) != set(now):
                self._send(MessageType.DBIRTH, now.values(), device)
            elif changed_device := _changed(before, now):
                self._send(MessageType.DDATA, changed_device, device)
        self._born = report

    def _publish_death(self) -> None:
        death = [Metric(BD_SEQ, DataType.INT64, self._bd_seq)]
        payload = encode_payload(death, timestamp_ms=now_ms(), seq=None)
        self.link.publish(self._topic(MessageType.NDEATH), payload, qos=1)

    def _send(self, kind: MessageType, items: Iterable[Metric], device: str | None = None) -> None:
        payload = encode_payload(items, timestamp_ms=now_ms(), seq=self._seq)
        self._seq = (self._seq + 1) % 256
        self.link.publish(self._topic(kind, device), payload, qos=0)

    def _topic(self, kind: MessageType, device: str | None = None) -> str:
        return node_topic(self.group_id, kind, self.node_id, device)

    def _safely(self, fn: Callable[[], object]) -> None:
        """A bug in a report must not end the node's thread (its health would say so, and nothing
        would be published again); it is logged with its traceback."""
        try:
            fn()
        except Exception:
            log.exception("Sparkplug node %s: failed to publish", self.node_id)


def _changed(before: Mapping[str, Metric], now: Mapping[str, Metric]) -> list[Metric]:
    return [m for name, m in now.items() if _key(before[name]) != _key(m)]


def _key(metric: Metric) -> tuple[DataType, MetricValue]:
    return metric.datatype, metric.value
