"""The node's presence on the broker: its birth and death (Sparkplug-style, paired by a birth sequence
that survives restarts), the Last Will that announces an unclean death, the retained status it keeps
current, and the commands it takes from the cloud, each acknowledged whether applied or refused."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import assert_never

from edge.capture import CameraWorker
from edge.observability import EdgeMetrics
from edge.snapshot import latest_snapshot
from edge.spool import Spool
from edge.threads import logged_thread
from edge.thumbnails import ThumbnailMaker
from shared import __version__
from shared.codec import decode_message, encode
from shared.errors import ContractError
from shared.layout import Camera
from shared.messages import (
    CameraState,
    CommandAck,
    CommandRequest,
    Message,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    Rebirth,
    RequestSnapshot,
    RequestThumbnail,
    SetCalibration,
    SetCameraEnabled,
    SetSampleRate,
)
from shared.mqtt import MqttConnection, Will
from shared.topics import Topic, TopicKind

log = logging.getLogger(__name__)

# How often camera states are checked: a change is published within this long.
STATUS_POLL_S = 1.0


class NodeSession:
    """Births, deaths, status and commands of one node over its link; `start()` draws the birth
    sequence and starts the status thread, `stop()` joins it and announces a clean death."""

    def __init__(
        self,
        *,
        site: str,
        node_id: str,
        link: MqttConnection,
        spool: Spool,
        workers: Mapping[str, CameraWorker],
        cameras: Mapping[str, Camera],
        thumbnails: ThumbnailMaker,
        metrics: EdgeMetrics,
        status_interval_s: float,
        recalibrate: Callable[[SetCalibration, str], None],
    ) -> None:
        self.site = site
        self.node_id = node_id
        self.link = link
        self.spool = spool
        self.workers = workers
        # The node's own map, read at each snapshot: a recalibration replaces its cameras in place.
        self.cameras = cameras
        self.thumbnails = thumbnails
        self.metrics = metrics
        self.status_interval_s = status_interval_s
        self._recalibrate = recalibrate  # the node's: it owns the units a calibration switches
        self.bd_seq = -1  # drawn from the spool at start
        self._stop = threading.Event()
        self._started_mono = time.monotonic()
        self.thread = logged_thread("edge-status", self._status_loop, node_id)
        link.subscribe(str(self._topic(TopicKind.COMMAND)), self._on_command)
        link.subscribe(str(self._topic(TopicKind.NODE_STATE)), self._on_own_state)

    def start(self) -> None:
        """Draw this session's birth sequence and arm its Will (before the link connects), start the
        status thread."""
        self._started_mono = time.monotonic()
        self.bd_seq = self.spool.next_counter("bd_seq")
        self.link.set_will(self._will())
        self.thread.start()

    def stop(self) -> None:
        """Join the status thread; when connected, announce a clean death (before the link stops)."""
        self._stop.set()
        self.thread.join(10)
        if self.link.connected.is_set():
            self._publish(TopicKind.NODE_STATE, self._lifecycle(NodeState.OFFLINE, "clean shutdown"), True)

    # the link's events -----------------------------------------------------------------------

    def connected(self) -> None:
        """A connection is up: announce the birth."""
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_reconnects.inc()
        self._publish_birth()

    def connect_failed(self, _reason: str) -> None:
        """An attempt to connect failed (the link logs why)."""
        self.metrics.mqtt_connect_failures.inc()

    def disconnected(self) -> None:
        """The connection is gone: the next one is a new session, with a birth sequence of its own."""
        self.metrics.mqtt_connected.set(0)
        if self._stop.is_set():
            return
        # The next session gets a new birth sequence; its Will must carry it.
        self.bd_seq = self.spool.next_counter("bd_seq")
        self.link.set_will(self._will())

    # birth and death -------------------------------------------------------------------------

    def _will(self) -> Will:
        death = self._lifecycle(NodeState.OFFLINE, "connection lost")
        return Will(str(self._topic(TopicKind.NODE_STATE)), encode(death))

    def _lifecycle(self, state: NodeState, reason: str = "") -> NodeLifecycle:
        return NodeLifecycle(
            node_id=self.node_id,
            state=state,
            bd_seq=self.bd_seq,
            at=datetime.now(UTC),
            software_version=__version__,
            cameras=sorted(self.workers),
            reason=reason,
        )

    def _publish_birth(self) -> None:
        self._publish(TopicKind.NODE_STATE, self._lifecycle(NodeState.ONLINE), retain=True)
        self._publish_status()

    def _on_own_state(self, topic: str, payload: bytes) -> None:
        """A late Will of an older session overwrote our retained birth: restore it."""
        try:
            _, message = decode_message(topic, payload)
        except ContractError:
            return
        if (
            isinstance(message, NodeLifecycle)
            and message.state is NodeState.OFFLINE
            and not self._stop.is_set()
            and message.bd_seq != self.bd_seq
            and self.link.connected.is_set()
        ):
            log.warning(
                "retained state says offline (bdSeq %d, ours is %d): republishing the birth",
                message.bd_seq,
                self.bd_seq,
            )
            self._publish_birth()

    # status ----------------------------------------------------------------------------------

    def _status_loop(self) -> None:
        last_states: dict[str, CameraState] = {}
        next_full = 0.0
        while not self._stop.wait(STATUS_POLL_S):
            self._update_metrics()
            if not self.link.connected.is_set():
                continue
            now = time.monotonic()
            states = {cid: w.health().state for cid, w in self.workers.items()}
            if now >= next_full:
                self._publish_status()
                next_full = now + self.status_interval_s
            else:
                for cid, state in states.items():
                    if last_states.get(cid) is not state:
                        self._publish(TopicKind.CAMERA_STATUS, self.workers[cid].status(), True, camera=cid)
            last_states = states

    def _publish_status(self) -> None:
        statuses = {cid: w.status() for cid, w in self.workers.items()}
        for cid, status in statuses.items():
            self._publish(TopicKind.CAMERA_STATUS, status, retain=True, camera=cid)
        node = NodeStatus(
            node_id=self.node_id,
            at=datetime.now(UTC),
            uptime_s=round(time.monotonic() - self._started_mono, 1),
            spool_depth=self.spool.depth(),
            spool_dropped_total=sum(self.spool.dropped.values()),
            cameras_online=sum(s.state is CameraState.ONLINE for s in statuses.values()),
            cameras_total=len(statuses),
        )
        self._publish(TopicKind.NODE_STATUS, node, retain=True)

    def _update_metrics(self) -> None:
        for cid, worker in self.workers.items():
            status = worker.status()
            self.metrics.camera_fps.labels(cid).set(status.fps_captured)
            self.metrics.camera_online.labels(cid).set(1 if status.state is CameraState.ONLINE else 0)
            self.metrics.reconnects.labels(cid).set(status.reconnects_last_hour)
        self.metrics.spool_depth.set(self.spool.depth())
        self.metrics.spool_bytes.set(self.spool.bytes)
        for kind, count in self.spool.dropped.items():
            self.metrics.spool_dropped.labels(kind.value).set(count)

    # commands --------------------------------------------------------------------------------

    def _on_command(self, topic: str, payload: bytes) -> None:
        command_id = None
        try:
            _, request = decode_message(topic, payload)
            if not isinstance(request, CommandRequest):  # the command topic's model is CommandRequest
                raise ContractError(f"{topic}: not a command request")
            command_id = request.command_id
            self._apply(request)
        except (ContractError, ValueError) as exc:
            self.metrics.commands.labels("rejected").inc()
            log.warning("edge node %s: rejected a command: %s", self.node_id, exc)
            ack = CommandAck(
                command_id=command_id,
                node_id=self.node_id,
                at=datetime.now(UTC),
                accepted=False,
                reason=str(exc)[:500],
            )
        else:
            self.metrics.commands.labels("accepted").inc()
            ack = CommandAck(command_id=command_id, node_id=self.node_id, at=datetime.now(UTC), accepted=True)
        self._publish(TopicKind.COMMAND_ACK, ack)

    def _apply(self, request: CommandRequest) -> None:
        # Exhaustive over the contract's commands: one added there and not here fails mypy.
        command = request.command
        match command:
            case Rebirth():
                log.info(
                    "edge node %s: rebirth requested by %s", self.node_id, request.issued_by or "the cloud"
                )
                self._publish_birth()
                return
            case SetSampleRate():
                self._worker(command.camera_id).set_sample_fps(command.fps)
            case SetCameraEnabled():
                self._worker(command.camera_id).set_enabled(command.enabled)
            case RequestThumbnail():
                self._worker(command.camera_id)
                self.thumbnails.request(
                    command.camera_id, command.span.start_m, command.span.end_m, time.monotonic()
                )
            case RequestSnapshot():
                snapshot = latest_snapshot(
                    self._worker(command.camera_id), self.cameras[command.camera_id], request.command_id
                )
                self._publish(TopicKind.SNAPSHOT, snapshot, camera=command.camera_id)
            case SetCalibration():
                self._recalibrate(command, request.issued_by or "the cloud")  # logs what it did
                return
            case _:
                assert_never(command)
        log.info("edge node %s: applied %s from %s", self.node_id, command, request.issued_by or "the cloud")

    def _worker(self, camera_id: str) -> CameraWorker:
        worker = self.workers.get(camera_id)
        if worker is None:
            raise ValueError(f"camera {camera_id!r} is not served by node {self.node_id}")
        return worker

    # -----------------------------------------------------------------------------------------

    def _publish(
        self, kind: TopicKind, message: Message, retain: bool = False, camera: str | None = None
    ) -> None:
        """Status-like messages go straight out when connected: only the latest matters."""
        self.link.publish(str(self._topic(kind, camera)), encode(message), qos=1, retain=retain)

    def _topic(self, kind: TopicKind, camera: str | None = None) -> Topic:
        return Topic(kind, self.site, self.node_id, camera=camera)
