"""One capture worker per camera: reads frames, watches the camera's health, reconnects with backoff,
and hands sampled frames on. A camera that fails is that camera's problem: its worker keeps trying,
the others never wait for it."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import CameraSettings, CaptureConfig
from shared.errors import DepotwatchError
from shared.frames import Frame
from shared.messages import CameraHealth, CameraState, CameraStatus

log = logging.getLogger(__name__)

# Every n-th pixel in both directions is compared with the previous frame: a live sensor's noise
# changes some of them in every frame, a frozen stream repeats them bit for bit.
FROZEN_STRIDE = 16
# Frames are black when the mean of the sampled pixels is below the configured level.
# Smoothing of the measured frame rate.
FPS_ALPHA = 0.2
# Pause between reads that fail at once (an ended file), so a dead source does not spin a core.
FAILED_READ_PAUSE_S = 0.05


class CaptureError(DepotwatchError):
    """A camera source cannot be opened."""


class FrameSource(Protocol):
    """What a worker reads from: cv2.VideoCapture, a SimCamera, or anything alike."""

    def read(self) -> tuple[bool, Frame | None]:
        """The next frame, like cv2.VideoCapture.read(): (False, None) when none came."""
        ...

    def release(self) -> None:
        """Close the source; a blocked read should return."""
        ...


def open_video(url: str, open_timeout_s: float, pace_files: bool = True) -> FrameSource:
    """An RTSP stream or a video file through OpenCV's FFmpeg backend. A file is played at its own
    frame rate, like a live camera, unless `pace_files` is off (benchmarks push it to the maximum)."""
    timeout_ms = int(open_timeout_s * 1000)
    cap = cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
    )
    if not cap.isOpened():
        cap.release()
        raise CaptureError(f"cannot open {url}")
    is_stream = "://" in url and not url.startswith("file://")
    fps = cap.get(cv2.CAP_PROP_FPS)
    if pace_files and not is_stream and fps > 0:
        return PacedSource(cap, fps)  # type: ignore[arg-type]
    return cap  # type: ignore[return-value]


class PacedSource:
    """Delivers a file's frames no faster than its frame rate."""

    def __init__(self, source: FrameSource, fps: float) -> None:
        self._source = source
        self._period = 1.0 / fps
        self._next = time.monotonic()

    def read(self) -> tuple[bool, Frame | None]:
        """The source's next frame, once its time has come."""
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next + self._period, time.monotonic() - self._period)
        return self._source.read()

    def release(self) -> None:
        """Release the file."""
        self._source.release()


FrameSink = Callable[[str, Frame, datetime], None]
# A frame and when it was captured.
Captured = tuple[Frame, datetime]


class CameraWorker:
    """Owns one camera's capture thread; `stop()` ends and joins it."""

    def __init__(
        self,
        camera_id: str,
        node_id: str,
        opener: Callable[[], FrameSource],
        settings: CameraSettings,
        capture: CaptureConfig,
        sink: FrameSink,
    ) -> None:
        self.camera_id = camera_id
        self.node_id = node_id
        self.settings = settings
        self._capture = capture
        self._opener = opener
        self._sink = sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{camera_id}", daemon=True)
        self._lock = threading.Lock()
        self._state = CameraState.OFFLINE if settings.enabled else CameraState.DISABLED
        self._reason = "not connected yet"
        self._fps = 0.0
        self._last_frame_mono: float | None = None
        self.last_frame_at: datetime | None = None
        # The latest frame read, whatever its picture (a snapshot of a black one shows why), kept by
        # reference: sources hand out a new array per frame and nothing writes into one.
        self.latest: Captured | None = None
        self._reconnects: deque[float] = deque()
        self.frames_total = 0
        self.fps_inferred = 0.0
        self.frames_dropped_total = 0
        self._signature: npt.NDArray[np.uint8] | None = None
        self._unchanged_since = 0.0
        self._next_sample = 0.0

    # control ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the capture thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End and join the capture thread."""
        self._stop.set()
        self._thread.join(timeout)

    def set_enabled(self, enabled: bool) -> None:
        """Switch the camera on or off (remote command)."""
        self.settings = self.settings.model_copy(update={"enabled": enabled})

    def set_sample_fps(self, fps: float) -> None:
        """Change the sampling rate (remote command)."""
        self.settings = self.settings.model_copy(update={"sample_fps": fps})

    # health ----------------------------------------------------------------------------------

    def health(self) -> CameraHealth:
        """State for a detection message."""
        state, _ = self._current_state()
        return CameraHealth(state=state, fps=round(self._fps, 2))

    def status(self) -> CameraStatus:
        """Full status message."""
        state, reason = self._current_state()
        hour_ago = time.monotonic() - 3600
        while self._reconnects and self._reconnects[0] < hour_ago:
            self._reconnects.popleft()
        return CameraStatus(
            node_id=self.node_id,
            camera_id=self.camera_id,
            at=datetime.now(UTC),
            state=state,
            fps_captured=round(self._fps, 2),
            fps_inferred=round(self.fps_inferred, 2),
            frames_dropped_total=self.frames_dropped_total,
            reconnects_last_hour=len(self._reconnects),
            last_frame_at=self.last_frame_at,
            reason="" if state is CameraState.ONLINE else reason[:200],
        )

    def _current_state(self) -> tuple[CameraState, str]:
        """The state as of now: an online camera whose frames stopped is stalled even mid-read."""
        with self._lock:
            state, reason = self._state, self._reason
        if not self.settings.enabled:
            return CameraState.DISABLED, "disabled by command"
        if state is CameraState.ONLINE and self._last_frame_mono is not None:
            silent = time.monotonic() - self._last_frame_mono
            if silent > self._capture.stall_after_s:
                return CameraState.STALLED, f"no frame for {silent:.0f} s"
        return state, reason

    def _set_state(self, state: CameraState, reason: str) -> None:
        with self._lock:
            changed = state is not self._state
            self._state, self._reason = state, reason
        if changed:
            level = logging.INFO if state is CameraState.ONLINE else logging.WARNING
            log.log(level, "camera %s is %s%s", self.camera_id, state.value, f": {reason}" if reason else "")

    # the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        source: FrameSource | None = None
        backoff, longest = self._capture.reconnect_backoff_s
        wait = backoff
        opened_before = False
        while not self._stop.is_set():
            if not self.settings.enabled:
                if source is not None:
                    source.release()
                    source = None
                self._set_state(CameraState.DISABLED, "disabled by command")
                self._stop.wait(0.2)
                continue
            if source is None:
                try:
                    source = self._opener()
                except Exception as exc:  # any failure to open is this camera's problem only
                    self._set_state(CameraState.OFFLINE, str(exc))
                    self._stop.wait(wait)
                    wait = min(wait * 2, longest)
                    continue
                if opened_before:
                    self._reconnects.append(time.monotonic())
                opened_before = True
                self._last_frame_mono = time.monotonic()
            try:
                ok, frame = source.read()
            except Exception as exc:
                log.warning("camera %s: read failed: %s", self.camera_id, exc)
                ok, frame = False, None
            now = time.monotonic()
            if not ok or frame is None:
                silent = now - (self._last_frame_mono or now)
                if silent > self._capture.offline_after_s:
                    self._set_state(CameraState.OFFLINE, f"no frame for {silent:.0f} s; reconnecting")
                    source.release()
                    source = None
                    self._stop.wait(wait)
                    wait = min(wait * 2, longest)
                elif silent > self._capture.stall_after_s:
                    self._set_state(CameraState.STALLED, f"no frame for {silent:.0f} s")
                    self._stop.wait(FAILED_READ_PAUSE_S)
                else:
                    self._stop.wait(FAILED_READ_PAUSE_S)
                continue
            wait = backoff
            self._on_frame(frame, now)
        if source is not None:
            source.release()

    def _on_frame(self, frame: Frame, now: float) -> None:
        if self._last_frame_mono is not None and now > self._last_frame_mono:
            instant = 1.0 / (now - self._last_frame_mono)
            self._fps = instant if self._fps == 0 else (1 - FPS_ALPHA) * self._fps + FPS_ALPHA * instant
        self._last_frame_mono = now
        self.last_frame_at = datetime.now(UTC)
        self.latest = (frame, self.last_frame_at)  # one assignment: readers never see a torn pair
        self.frames_total += 1
        sample = frame[::FROZEN_STRIDE, ::FROZEN_STRIDE]
        if self._signature is None or not np.array_equal(sample, self._signature):
            self._unchanged_since = now
        self._signature = sample.copy()
        if float(sample.mean()) < self._capture.black_level:
            self._set_state(CameraState.STALLED, "black picture")
            return
        if now - self._unchanged_since > self._capture.frozen_after_s:
            self._set_state(CameraState.STALLED, f"picture frozen for {now - self._unchanged_since:.0f} s")
            return
        self._set_state(CameraState.ONLINE, "")
        if now >= self._next_sample:
            period = 1.0 / self.settings.sample_fps
            self._next_sample = max(self._next_sample + period, now + period / 2)
            self._sink(self.camera_id, frame, self.last_frame_at)
