"""The edge node: capture workers, inference, store-and-forward publishing, status and remote control,
each on a thread this object owns; `stop()` ends and joins them all."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from edge.aggregate import LatestFrames, MotionGate, Sampled
from edge.capture import CameraWorker, FrameSource, open_video
from edge.config import EdgeConfig, LpeConfig, sim_epoch
from edge.health import broker_problem
from edge.lpe.estimator import PositionEstimator
from edge.lpe.openvino_lpe import LpeModelError, OpenVinoLpe
from edge.lpe.strip import FrameError
from edge.observability import EdgeMetrics, HealthServer
from edge.shadow import ShadowRunner
from edge.spool import Kind, Spool, Spooled
from edge.thumbnails import ThumbnailMaker
from shared import __version__
from shared.codec import decode, decode_message, encode
from shared.errors import ContractError
from shared.layout import Facility
from shared.messages import (
    CameraState,
    CommandAck,
    CommandRequest,
    Detection,
    LocoExtent,
    ModelRef,
    NodeLifecycle,
    NodeState,
    NodeStatus,
    Rebirth,
    RequestThumbnail,
    SetCameraEnabled,
    SetSampleRate,
    Thumbnail,
    TrackSpan,
)
from shared.mqtt import MqttConnection, Will
from shared.topics import Topic, TopicKind
from sim.scenario import Scenario, load_scenario
from sim.source import SimCamera, parse_sim_url
from sim.world import World

log = logging.getLogger(__name__)

# Messages in flight to the broker at once; more would only sit in paho's queue.
MAX_IN_FLIGHT = 100
LIVE_BATCH = 100
STATUS_POLL_S = 1.0


class EdgeNode:
    """One edge box: everything between the cameras and the broker."""

    def __init__(
        self, config: EdgeConfig, facility: Facility, estimator: PositionEstimator | None = None
    ) -> None:
        self.config = config
        self.facility = facility
        self.node_id = config.node_id
        self.site = facility.site
        self.cameras = facility.cameras_of_node(config.node_id)
        self.metrics = EdgeMetrics()
        self.spool = Spool(config.spool.path, int(config.spool.max_megabytes * 1e6))
        self.estimator = estimator or self._open_lpe(config.lpe)
        self.shadow_errors: dict[str, str] = {}
        self.shadows = self._shadow_runners()
        self.frames = LatestFrames(on_drop=self._on_frame_dropped)
        self.gate = MotionGate()
        self.thumbnails = ThumbnailMaker(self.cameras, config.thumbnails)
        self._world: World | None = None
        self._epoch = sim_epoch(config) or time.time()
        self.workers = {
            cid: CameraWorker(
                cid,
                self.node_id,
                self._opener(cid),
                config.capture.settings_for(cid),
                config.capture,
                self.frames.put,
            )
            for cid in sorted(self.cameras)
        }
        self._bd_seq = self.spool.next_counter("bd_seq")
        self.link = MqttConnection(
            config.broker,
            f"depotwatch-edge-{self.node_id}",
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_published=self._acks_put,
            on_connect_failed=self._on_connect_failed,
            will=self._will(),
        )
        self.link.subscribe(str(self._topic(TopicKind.COMMAND)), self._on_command)
        self.link.subscribe(str(self._topic(TopicKind.NODE_STATE)), self._on_own_state)
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._backlog_boundary = 0
        self._reset_cursors = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard(self._infer_loop), name="edge-infer", daemon=True),
            threading.Thread(target=self._guard(self._publish_loop), name="edge-publish", daemon=True),
            threading.Thread(target=self._guard(self._status_loop), name="edge-status", daemon=True),
        ]
        self.http = (
            HealthServer(config.metrics.host, config.metrics.port, self.metrics, self.health)
            if config.metrics.port
            else None
        )
        self._started_mono = time.monotonic()

    # lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every thread and connect to the broker."""
        log.info("edge node %s starting with cameras %s", self.node_id, ", ".join(self.workers))
        if self.http is not None:
            self.http.start()
        self.link.start()
        for thread in self._threads:
            thread.start()
        for shadow in self.shadows.values():
            shadow.start()
        for worker in self.workers.values():
            worker.start()

    def stop(self) -> None:
        """Announce a clean death, stop every thread, keep the spool for the next start."""
        log.info("edge node %s stopping", self.node_id)
        self._stop.set()
        for worker in self.workers.values():
            worker.stop()
        for thread in self._threads:
            thread.join(10)
        for shadow in self.shadows.values():
            shadow.stop()
        if self.link.connected.is_set():
            self._publish_direct(
                TopicKind.NODE_STATE, self._lifecycle(NodeState.OFFLINE, "clean shutdown"), retain=True
            )
        self.link.stop()
        close = getattr(self.estimator, "close", None)
        if close is not None:
            close()
        if self.http is not None:
            self.http.stop()
        self.spool.close()

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set (by SIGTERM in the CLI)."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def health(self) -> dict[str, object]:
        """What /healthz reports; `problems` says why it is unhealthy (503)."""
        stopped = [t.name for t in self._threads if t.ident and not t.is_alive()]  # started, then died
        problems = [] if self._stop.is_set() else [f"thread {name} has stopped" for name in stopped]
        link = self.link.state()
        if (broker := broker_problem(link)) is not None:
            problems.append(broker)
        return {
            "healthy": not problems,
            "problems": problems,
            "node_id": self.node_id,
            "mqtt_connected": link.connected,
            "broker": {
                "url": link.url,
                "connected": link.connected,
                "failed_attempts": link.failed_attempts,
                "last_error": link.last_error,
                "down_for_s": None if link.down_for_s is None else round(link.down_for_s, 1),
            },
            "spool_depth": self.spool.depth(),
            "cameras": {cid: w.health().state.value for cid, w in self.workers.items()},
            "shadow": {flow: "running" if run.alive() else "stopped" for flow, run in self.shadows.items()}
            | {flow: f"failed: {error}" for flow, error in self.shadow_errors.items()},
        }

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except Exception:
                log.exception("edge node %s: %s crashed", self.node_id, threading.current_thread().name)

        return run

    # sources ---------------------------------------------------------------------------------

    def _opener(self, camera_id: str) -> Callable[[], FrameSource]:
        source = self.cameras[camera_id].source

        def open_source() -> FrameSource:
            if source.startswith("sim://"):
                url = parse_sim_url(source)
                if "speed=" not in source:
                    url = url.model_copy(update={"speed": self.config.sim.speed})
                return SimCamera(self.facility, self._sim_world(), url, epoch=self._epoch)
            return open_video(source, self.config.capture.open_timeout_s, self.config.capture.pace_files)

        return open_source

    def _sim_world(self) -> World:
        if self._world is None:
            sim = self.config.sim
            scenario = load_scenario(sim.scenario) if sim.scenario else Scenario()
            if sim.seed is not None:
                scenario = scenario.model_copy(update={"seed": sim.seed})
            self._world = World(self.facility, scenario)
        return self._world

    def _shadow_runners(self) -> dict[str, ShadowRunner]:
        """A runner per shadow flow; a shadow model that cannot load is reported, not fatal."""
        runners = {}
        for flow, shadow in self.config.shadow.items():
            try:
                estimator = self._open_lpe(shadow.lpe, threads=shadow.threads)
            except LpeModelError as exc:
                log.error("edge node %s: shadow flow %s stays off: %s", self.node_id, flow, exc)
                self.shadow_errors[flow] = str(exc)
                continue
            emit = self._shadow_emitter(flow, estimator.model)
            runners[flow] = ShadowRunner(flow, estimator, emit, self.metrics)
            log.info("edge node %s: flow %s runs %s in shadow", self.node_id, flow, estimator.model.version)
        return runners

    def _open_lpe(self, lpe: LpeConfig, threads: int | None = None) -> OpenVinoLpe:
        return OpenVinoLpe(
            lpe.model_dir,
            self.cameras,
            precision=lpe.precision,
            device=lpe.device,
            batch=min(lpe.batch, len(self.cameras)),
            requests=lpe.requests,
            hint=lpe.hint,
            threads=threads,
        )

    def _shadow_emitter(self, flow: str, model: ModelRef) -> Callable[[Sampled, list[LocoExtent]], None]:
        def emit(sampled: Sampled, extents: list[LocoExtent]) -> None:
            self._emit(sampled, extents, time.monotonic(), flow=flow, model=model)

        return emit

    def _on_frame_dropped(self, camera_id: str) -> None:
        self.workers[camera_id].frames_dropped_total += 1
        self.metrics.frames_dropped.labels(camera_id).inc()

    # inference -------------------------------------------------------------------------------

    def _infer_loop(self) -> None:
        inferred_at: dict[str, float] = {}
        while not self._stop.is_set():
            sampled = self.frames.take(timeout=0.2)
            now = time.monotonic()
            todo = []
            for s in sampled:
                settings = self.workers[s.camera_id].settings
                if settings.motion_gating and not self.gate.needs_inference(
                    s.camera_id, s.frame, now, settings.reconfirm_s
                ):
                    self.metrics.frames_gated.labels(s.camera_id).inc()
                    continue
                todo.append(s)
            if not todo:
                continue
            estimated = self._estimate(todo)
            if self.shadows:
                frames = [s for s, _ in estimated]
                for shadow in self.shadows.values():
                    shadow.offer(frames)
            for s, extents in estimated:
                try:
                    self._emit(s, extents, now)
                except ValueError as exc:  # the contract refuses it (a model gone wrong): this one only
                    log.error("camera %s: detection not sent, it breaks the contract: %s", s.camera_id, exc)
                    continue
                last = inferred_at.get(s.camera_id)
                if last is not None and now > last:
                    worker = self.workers[s.camera_id]
                    worker.fps_inferred = 0.8 * worker.fps_inferred + 0.2 / (now - last)
                inferred_at[s.camera_id] = now
                self.metrics.frames_inferred.labels(s.camera_id).inc()

    def _estimate(self, todo: list[Sampled]) -> list[tuple[Sampled, list[LocoExtent]]]:
        started = time.perf_counter()
        try:
            results = self.estimator.estimate([(s.camera_id, s.frame) for s in todo])
            pairs = list(zip(todo, results, strict=True))
        except FrameError:
            # One bad frame must not cost the others their detections: retry one by one.
            pairs = []
            for s in todo:
                try:
                    pairs.append((s, self.estimator.estimate([(s.camera_id, s.frame)])[0]))
                except FrameError as exc:
                    log.error("camera %s: frame rejected by the estimator: %s", s.camera_id, exc)
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        return pairs

    def _emit(
        self,
        sampled: Sampled,
        extents: list[LocoExtent],
        now: float,
        *,
        flow: str | None = None,
        model: ModelRef | None = None,
    ) -> None:
        """Spool the detection of a frame (and, for the node's own flow, any thumbnails due)."""
        cam = self.cameras[sampled.camera_id]
        shadow = flow is not None and flow != self.config.flow
        flow = flow or self.config.flow
        detection = Detection(
            observation_id=uuid.uuid4(),
            node_id=self.node_id,
            camera_id=sampled.camera_id,
            track_id=cam.track,
            flow=flow,
            model=model or self.estimator.model,
            captured_at=sampled.captured_at,
            seq=0,
            view=TrackSpan(start_m=cam.view.start_m, end_m=cam.view.end_m),
            extents=extents,
            camera=self.workers[sampled.camera_id].health(),
        )
        # Numbered once it is valid, so a detection the contract refuses leaves no gap in the numbers.
        seq = self.spool.next_counter(f"detection_seq:{flow}" if shadow else "detection_seq")
        detection = detection.model_copy(update={"seq": seq})
        topic = self._topic(TopicKind.DETECTION, camera=sampled.camera_id, flow=flow)
        self.spool.put(Kind.SHADOW if shadow else Kind.DETECTION, str(topic), encode(detection))
        if shadow:
            self._wake.set()
            return
        for index, extent in enumerate(extents):
            if not self.thumbnails.due(sampled.camera_id, extent, now):
                continue
            thumb = self.thumbnails.make(
                node_id=self.node_id,
                camera_id=sampled.camera_id,
                track_id=cam.track,
                flow=self.config.flow,
                observation_id=detection.observation_id,
                captured_at=sampled.captured_at,
                index=index,
                extent=extent,
                frame=sampled.frame,
            )
            if thumb is not None:
                topic = self._topic(TopicKind.THUMBNAIL, camera=sampled.camera_id)
                self.spool.put(Kind.THUMBNAIL, str(topic), encode(thumb))
        self._wake.set()

    # publishing ------------------------------------------------------------------------------

    def _acks_put(self, mid: int) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _publish_loop(self) -> None:
        """Live messages as they come; the backlog from before this connection in order, marked
        historical, at the configured rate; a row leaves the spool only on the broker's ack."""
        in_flight: dict[int, Spooled] = {}
        live_cursor = backlog_cursor = 0
        tokens, refilled = 0.0, time.monotonic()
        rate = self.config.spool.backlog_rate_per_s
        while not self._stop.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if self._reset_cursors.is_set():
                self._reset_cursors.clear()
                in_flight.clear()
                live_cursor, backlog_cursor = self._backlog_boundary, 0
            while not self._acks.empty():
                row = in_flight.pop(self._acks.get(), None)
                if row is not None:
                    self.spool.ack(row.id)
                    self.metrics.published_bytes.labels(row.kind.value).inc(len(row.payload))
                    self.metrics.publish_seconds.observe(max(time.time() - row.created, 0.0))
            if not self.link.connected.is_set():
                continue
            room = MAX_IN_FLIGHT - len(in_flight)
            for row in (
                self.spool.pending(after_id=live_cursor, limit=min(room, LIVE_BATCH)) if room > 0 else []
            ):
                if not self._send(row, row.payload, in_flight):
                    break
                live_cursor = row.id
            now = time.monotonic()
            tokens = min(tokens + (now - refilled) * rate, rate)
            refilled = now
            room = MAX_IN_FLIGHT - len(in_flight)
            if backlog_cursor < self._backlog_boundary and tokens >= 1 and room > 0:
                rows = self.spool.pending(
                    after_id=backlog_cursor, up_to_id=self._backlog_boundary, limit=min(int(tokens), room)
                )
                for row in rows:
                    if not self._send(row, _as_historical(row), in_flight):
                        break
                    backlog_cursor = row.id
                    tokens -= 1
                if not rows:
                    backlog_cursor = self._backlog_boundary

    def _send(self, row: Spooled, payload: bytes, in_flight: dict[int, Spooled]) -> bool:
        mid = self.link.publish(row.topic, payload, qos=row.qos, retain=row.retain)
        if mid is None:
            return False
        in_flight[mid] = row
        return True

    # connection ------------------------------------------------------------------------------

    def _will(self) -> Will:
        death = self._lifecycle(NodeState.OFFLINE, "connection lost")
        return Will(str(self._topic(TopicKind.NODE_STATE)), encode(death))

    def _lifecycle(self, state: NodeState, reason: str = "") -> NodeLifecycle:
        return NodeLifecycle(
            node_id=self.node_id,
            state=state,
            bd_seq=self._bd_seq,
            at=datetime.now(UTC),
            software_version=__version__,
            cameras=sorted(self.workers),
            reason=reason,
        )

    def _on_connect(self) -> None:
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_reconnects.inc()
        self._backlog_boundary = self.spool.last_id()
        self._reset_cursors.set()
        self._publish_birth()
        self._wake.set()

    def _on_connect_failed(self, _reason: str) -> None:
        self.metrics.mqtt_connect_failures.inc()

    def _on_disconnect(self) -> None:
        self.metrics.mqtt_connected.set(0)
        if self._stop.is_set():
            return
        # The next session gets a new birth sequence; its Will must carry it.
        self._bd_seq = self.spool.next_counter("bd_seq")
        self.link.set_will(self._will())

    def _publish_birth(self) -> None:
        self._publish_direct(TopicKind.NODE_STATE, self._lifecycle(NodeState.ONLINE), retain=True)
        self._publish_status()

    def _publish_direct(
        self, kind: TopicKind, message: object, retain: bool = False, camera: str | None = None
    ) -> None:
        """Status-like messages go straight out when connected: only the latest matters."""
        self.link.publish(str(self._topic(kind, camera=camera)), encode(message), qos=1, retain=retain)  # type: ignore[arg-type]

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
        ):
            if message.bd_seq != self._bd_seq and self.link.connected.is_set():
                log.warning(
                    "retained state says offline (bdSeq %d, ours is %d): republishing the birth",
                    message.bd_seq,
                    self._bd_seq,
                )
                self._publish_birth()

    # status and commands ---------------------------------------------------------------------

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
                next_full = now + self.config.status_interval_s
            else:
                for cid, state in states.items():
                    if last_states.get(cid) is not state:
                        self._publish_direct(
                            TopicKind.CAMERA_STATUS, self.workers[cid].status(), retain=True, camera=cid
                        )
            last_states = states

    def _publish_status(self) -> None:
        statuses = {cid: w.status() for cid, w in self.workers.items()}
        for cid, status in statuses.items():
            self._publish_direct(TopicKind.CAMERA_STATUS, status, retain=True, camera=cid)
        node = NodeStatus(
            node_id=self.node_id,
            at=datetime.now(UTC),
            uptime_s=round(time.monotonic() - self._started_mono, 1),
            spool_depth=self.spool.depth(),
            spool_dropped_total=sum(self.spool.dropped.values()),
            cameras_online=sum(s.state is CameraState.ONLINE for s in statuses.values()),
            cameras_total=len(statuses),
        )
        self._publish_direct(TopicKind.NODE_STATUS, node, retain=True)

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

    def _on_command(self, topic: str, payload: bytes) -> None:
        command_id = None
        try:
            _, request = decode_message(topic, payload)
            assert isinstance(request, CommandRequest)
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
        self._publish_direct(TopicKind.COMMAND_ACK, ack)

    def _apply(self, request: CommandRequest) -> None:
        command = request.command
        if isinstance(command, Rebirth):
            log.info("edge node %s: rebirth requested by %s", self.node_id, request.issued_by or "the cloud")
            self._publish_birth()
            return
        worker = self.workers.get(command.camera_id)
        if worker is None:
            raise ValueError(f"camera {command.camera_id!r} is not served by node {self.node_id}")
        if isinstance(command, SetSampleRate):
            worker.set_sample_fps(command.fps)
        elif isinstance(command, SetCameraEnabled):
            worker.set_enabled(command.enabled)
        elif isinstance(command, RequestThumbnail):
            self.thumbnails.request(
                command.camera_id, command.span.start_m, command.span.end_m, time.monotonic()
            )
        log.info("edge node %s: applied %s from %s", self.node_id, command, request.issued_by or "the cloud")

    def _topic(self, kind: TopicKind, camera: str | None = None, flow: str | None = None) -> Topic:
        if kind in (TopicKind.DETECTION, TopicKind.THUMBNAIL):
            flow = flow or self.config.flow
        return Topic(kind, self.site, self.node_id, flow=flow, camera=camera)


def _as_historical(row: Spooled) -> bytes:
    """The payload re-encoded with `historical` set: it is sent after an outage."""
    if row.kind in (Kind.DETECTION, Kind.SHADOW):
        detection = decode(Detection, row.payload)
        return encode(detection.model_copy(update={"historical": True}))
    thumb = decode(Thumbnail, row.payload)
    return encode(thumb.model_copy(update={"meta": thumb.meta.model_copy(update={"historical": True})}))
