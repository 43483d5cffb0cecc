"""The edge node: the wiring of its units — a capture worker per camera, the inference loop, the spool
publisher and the broker session — over one spool and one broker link. `EdgeNode.open` opens what
they need (sources, models, spool); `start()` starts them, `stop()` stops and joins them all."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from edge.aggregate import LatestFrames
from edge.capture import CameraWorker, FrameSource
from edge.config import EdgeConfig
from edge.health import broker_problem
from edge.inference import InferenceLoop
from edge.lpe.estimator import PositionEstimator
from edge.models import open_lpe, open_shadows
from edge.observability import EdgeMetrics, HealthServer
from edge.publisher import SpoolPublisher
from edge.recalibration import recalibrated, write_calibration
from edge.session import NodeSession
from edge.sources import VIDEO_SOURCES, SourceRegistry, camera_openers
from edge.sparkplug import camera_node
from edge.spool import Spool
from edge.thumbnails import ThumbnailMaker
from shared.layout import Facility
from shared.messages import SetCalibration
from shared.mqtt import MqttConnection

log = logging.getLogger(__name__)


class EdgeNode:
    """One edge box: everything between the cameras and the broker."""

    def __init__(
        self,
        config: EdgeConfig,
        facility: Facility,
        *,
        spool: Spool,
        estimator: PositionEstimator,
        openers: Mapping[str, Callable[[], FrameSource]],
        shadow_estimators: Mapping[str, PositionEstimator] | None = None,
        shadow_errors: Mapping[str, str] | None = None,
    ) -> None:
        """Wire the units over parts already open (see `open`); nothing is read, started or sent."""
        self.config = config
        self.facility = facility
        self.node_id = config.node_id
        self.cameras = facility.cameras_of_node(config.node_id)
        self.metrics = EdgeMetrics()
        self.spool = spool
        self.estimator = estimator
        self.shadow_errors = dict(shadow_errors or {})
        self.frames = LatestFrames(on_drop=self._on_frame_dropped)
        self.thumbnails = ThumbnailMaker(self.cameras, config.thumbnails)
        self.workers = {
            cid: CameraWorker(
                cid,
                self.node_id,
                openers[cid],
                config.capture.settings_for(cid),
                config.capture,
                self.frames.put,
            )
            for cid in sorted(self.cameras)
        }
        # The units below use this link; paho calls these only once it is started.
        self.link = MqttConnection(
            config.broker,
            f"depotwatch-edge-{self.node_id}",
            on_connect=self._on_connect,
            on_disconnect=lambda: self.session.disconnected(),
            on_published=lambda mid: self.publisher.acknowledged(mid),
            on_connect_failed=lambda reason: self.session.connect_failed(reason),
        )
        self.publisher = SpoolPublisher(
            self.node_id, spool, self.link, self.metrics, config.spool.backlog_rate_per_s
        )
        self.session = NodeSession(
            site=facility.site,
            node_id=self.node_id,
            link=self.link,
            spool=spool,
            workers=self.workers,
            cameras=self.cameras,
            thumbnails=self.thumbnails,
            metrics=self.metrics,
            status_interval_s=config.status_interval_s,
            recalibrate=self.recalibrate,
        )
        # Sparkplug B beside the JSON contract: a session of its own (its Will is the NDEATH).
        self.sparkplug = (
            camera_node(
                config.sparkplug,
                site=facility.site,
                node_id=self.node_id,
                broker=config.broker,
                workers=self.workers,
                spool=spool,
                on_host=self._primary_host,
            )
            if config.sparkplug.enabled
            else None
        )
        if self.sparkplug is not None and self.sparkplug.primary_host_id is not None:
            self.publisher.hold()  # until the primary host's STATE says online
        self.inference = InferenceLoop(
            site=facility.site,
            node_id=self.node_id,
            flow=config.flow,
            cameras=self.cameras,
            workers=self.workers,
            frames=self.frames,
            estimator=estimator,
            shadow_estimators=shadow_estimators or {},
            spool=spool,
            thumbnails=self.thumbnails,
            metrics=self.metrics,
            spooled=self.publisher.wake,
        )
        self.http = (
            HealthServer(config.metrics.host, config.metrics.port, self.metrics, self.health)
            if config.metrics.port
            else None
        )
        self._stopping = threading.Event()

    @classmethod
    def open(
        cls,
        config: EdgeConfig,
        facility: Facility,
        sources: SourceRegistry = VIDEO_SOURCES,
        estimator: PositionEstimator | None = None,
    ) -> EdgeNode:
        """Open the cameras' source openers, the models (the node's own unless `estimator` is given, and
        its shadow flows') and the spool, and wire a node over them. Raises ConfigError for a camera
        whose source no opener in `sources` knows, LpeModelError, SpoolError; a shadow model that cannot
        load is reported by /healthz, not raised."""
        cameras = facility.cameras_of_node(config.node_id)
        openers = camera_openers(config, facility, sources)
        estimator = estimator or open_lpe(config.lpe, cameras)
        shadows, errors = open_shadows(config, cameras)
        spool = Spool(config.spool.path, int(config.spool.max_megabytes * 1e6))
        return cls(
            config,
            facility,
            spool=spool,
            estimator=estimator,
            openers=openers,
            shadow_estimators=shadows,
            shadow_errors=errors,
        )

    def start(self) -> None:
        """Start every unit and connect to the broker."""
        log.info("edge node %s starting with cameras %s", self.node_id, ", ".join(self.workers))
        if self.http is not None:
            self.http.start()
        self.session.start()  # draws the birth sequence and arms the Will before the first connect
        self.link.start()
        if self.sparkplug is not None:
            self.sparkplug.start()
        self.publisher.start()
        self.inference.start()
        for worker in self.workers.values():
            worker.start()

    def stop(self) -> None:
        """Announce a clean death, stop every thread, keep the spool for the next start."""
        log.info("edge node %s stopping", self.node_id)
        self._stopping.set()
        for worker in self.workers.values():
            worker.stop()
        self.inference.stop()
        self.publisher.stop()
        self.session.stop()  # the death goes out while the link is still up
        if self.sparkplug is not None:
            self.sparkplug.stop()  # its NDEATH, then its own disconnect
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

    def recalibrate(self, command: SetCalibration, by: str) -> None:
        """Make the command's calibration and view its camera's, in the layout file first (the previous
        file kept) and then in the running units, without a restart; raises ValueError with the reason
        (a camera of another node, a calibration the layout loader refuses, a file that cannot be
        written), and then nothing has changed."""
        old = self.cameras.get(command.camera_id)
        if old is None:
            raise ValueError(f"camera {command.camera_id!r} is not served by node {self.node_id}")
        facility = recalibrated(self.facility, command)
        camera = facility.cameras[command.camera_id]
        written = write_calibration(self.config.layout, command)
        self.inference.recalibrate(command.camera_id, camera)
        self.facility = facility
        log.info(
            "edge node %s: camera %s recalibrated by %s, calibration %s -> %s (%s)",
            self.node_id,
            command.camera_id,
            by,
            old.calibration_version,
            camera.calibration_version,
            f"written to {self.config.layout}" if written else f"{self.config.layout} held it already",
        )

    def health(self) -> dict[str, object]:
        """What /healthz reports; `problems` says why it is unhealthy (503)."""
        threads = [self.inference.thread, self.publisher.thread, self.session.thread]
        if self.sparkplug is not None:
            threads.append(self.sparkplug.thread)
        stopped = [t.name for t in threads if t.ident and not t.is_alive()]  # started, then died
        problems = [] if self._stopping.is_set() else [f"thread {name} has stopped" for name in stopped]
        link = self.link.state()
        if (broker := broker_problem(link)) is not None:
            problems.append(broker)
        shadows = self.inference.shadows
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
            "spool_held": self.publisher.held,
            "sparkplug": None if self.sparkplug is None else self.sparkplug.status().as_dict(),
            "cameras": {cid: w.health().state.value for cid, w in self.workers.items()},
            "shadow": {flow: "running" if run.alive() else "stopped" for flow, run in shadows.items()}
            | {flow: f"failed: {error}" for flow, error in self.shadow_errors.items()},
        }

    def _on_connect(self) -> None:
        # What the spool holds now is this connection's backlog, sent after the birth is queued.
        self.publisher.connected()
        self.session.connected()
        self.publisher.wake()

    def _primary_host(self, online: bool) -> None:
        """Sparkplug's store and forward: hold the spool while the primary host is offline."""
        if online:
            log.info(
                "edge node %s: primary host online, sending the spool (%d held)",
                self.node_id,
                self.spool.depth(),
            )
            self.publisher.release()
        else:
            log.warning("edge node %s: primary host offline, holding the spool", self.node_id)
            self.publisher.hold()

    def _on_frame_dropped(self, camera_id: str) -> None:
        self.workers[camera_id].frames_dropped_total += 1
        self.metrics.frames_dropped.labels(camera_id).inc()
