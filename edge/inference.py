"""The inference loop: takes the newest sampled frame of each camera, skips the still ones, runs the
node's estimator on the rest in one batch, offers the batch to the shadow flows, and spools a numbered
detection per frame (and the thumbnails due) for the publisher."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import ExitStack

from edge.aggregate import LatestFrames, MotionGate, Sampled
from edge.capture import CameraWorker
from edge.lpe.estimator import PositionEstimator
from edge.observability import EdgeMetrics
from edge.shadow import Emit, ShadowRunner
from edge.spool import Kind, Spool
from edge.threads import logged_thread
from edge.thumbnails import ThumbnailMaker
from shared.codec import encode
from shared.layout import Camera
from shared.messages import Detection, LocoExtent, ModelRef, TrackSpan
from shared.strip import FrameError
from shared.topics import Topic, TopicKind

log = logging.getLogger(__name__)

# How long the loop waits for a frame before it looks at its stop event again.
TAKE_TIMEOUT_S = 0.2
# Smoothing of the inferred frame rate reported per camera.
FPS_ALPHA = 0.2


class InferenceLoop:
    """The node's own flow and its shadow flows on the node's frames; `start()` and `stop()` own the
    thread and the shadow runners."""

    def __init__(
        self,
        *,
        site: str,
        node_id: str,
        flow: str,
        cameras: MutableMapping[str, Camera],
        workers: Mapping[str, CameraWorker],
        frames: LatestFrames,
        estimator: PositionEstimator,
        shadow_estimators: Mapping[str, PositionEstimator],
        spool: Spool,
        thumbnails: ThumbnailMaker,
        metrics: EdgeMetrics,
        spooled: Callable[[], None],
    ) -> None:
        self.site = site
        self.node_id = node_id
        self.flow = flow
        self.cameras = cameras  # the node's own map: `recalibrate` updates it
        self.workers = workers
        self.frames = frames
        self.estimator = estimator
        self.spool = spool
        self.thumbnails = thumbnails
        self.metrics = metrics
        self._spooled = spooled
        self.gate = MotionGate()
        self.shadows = {
            name: ShadowRunner(name, shadow, self._shadow_emitter(name, shadow.model), metrics)
            for name, shadow in shadow_estimators.items()
        }
        # Held over a batch's estimate and emit, so that a recalibration falls between two batches.
        self._batch = threading.Lock()
        self._stop = threading.Event()
        self.thread = logged_thread("edge-infer", self._loop, node_id)

    def start(self) -> None:
        """Start the shadow runners and the loop."""
        for shadow in self.shadows.values():
            shadow.start()
        self.thread.start()

    def stop(self) -> None:
        """End and join the loop, then the shadow runners (which close their models)."""
        self._stop.set()
        self.thread.join(10)
        for shadow in self.shadows.values():
            shadow.stop()

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        """Use `camera` (a new calibration and view of one of the node's cameras) for its next frames
        in every flow: the estimators' strips, the thumbnails' crops and the detections' view switch
        together between two batches, so no detection mixes the old and the new. Raises ValueError
        for a camera not here."""
        if camera_id not in self.cameras:
            raise ValueError(f"camera {camera_id!r} is not served by node {self.node_id}")
        with ExitStack() as paused:
            # The main flow waits here at most for one shadow batch, once per recalibration.
            paused.enter_context(self._batch)
            for shadow in self.shadows.values():
                paused.enter_context(shadow.paused())
            self.estimator.recalibrate(camera_id, camera)
            for shadow in self.shadows.values():
                shadow.estimator.recalibrate(camera_id, camera)
            self.thumbnails.recalibrate(camera_id, camera)
            self.cameras[camera_id] = camera

    def _loop(self) -> None:
        inferred_at: dict[str, float] = {}
        while not self._stop.is_set():
            sampled = self.frames.take(timeout=TAKE_TIMEOUT_S)
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
            with self._batch:
                self._infer(todo, now, inferred_at)

    def _infer(self, todo: list[Sampled], now: float, inferred_at: dict[str, float]) -> None:
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
                worker.fps_inferred = (1 - FPS_ALPHA) * worker.fps_inferred + FPS_ALPHA / (now - last)
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

    def _shadow_emitter(self, flow: str, model: ModelRef) -> Emit:
        def emit(sampled: Sampled, extents: list[LocoExtent]) -> None:
            self._emit(sampled, extents, time.monotonic(), flow=flow, model=model)

        return emit

    def _emit(
        self,
        sampled: Sampled,
        extents: list[LocoExtent],
        now: float,
        *,
        flow: str | None = None,
        model: ModelRef | None = None,
    ) -> None:
        """Spool the detection of a frame (and, for the node's own flow, any thumbnails due); raises
        ValueError when the contract refuses it."""
        cam = self.cameras[sampled.camera_id]
        shadow = flow is not None and flow != self.flow
        flow = flow or self.flow
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
        topic = self._topic(TopicKind.DETECTION, sampled.camera_id, flow)
        self.spool.put(Kind.SHADOW if shadow else Kind.DETECTION, str(topic), encode(detection))
        if shadow:
            self._spooled()
            return
        for index, extent in enumerate(extents):
            if not self.thumbnails.due(sampled.camera_id, extent, now):
                continue
            thumb = self.thumbnails.make(
                node_id=self.node_id,
                camera_id=sampled.camera_id,
                track_id=cam.track,
                flow=self.flow,
                observation_id=detection.observation_id,
                captured_at=sampled.captured_at,
                index=index,
                extent=extent,
                frame=sampled.frame,
            )
            if thumb is not None:
                topic = self._topic(TopicKind.THUMBNAIL, sampled.camera_id, self.flow)
                self.spool.put(Kind.THUMBNAIL, str(topic), encode(thumb))
        self._spooled()

    def _topic(self, kind: TopicKind, camera: str, flow: str) -> Topic:
        return Topic(kind, self.site, self.node_id, flow=flow, camera=camera)
