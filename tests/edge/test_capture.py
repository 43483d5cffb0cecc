"""Capture workers on real sources: simulated cameras with faults and a video file that ends."""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture import CameraWorker, open_video
from edge.config import CameraSettings, CaptureConfig
from shared.layout import Facility
from shared.messages import CameraState
from sim.scenario import FaultKind, FaultSpec, Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from tests.waiting import wait_until

FAST = CaptureConfig(
    stall_after_s=0.4, offline_after_s=0.8, frozen_after_s=0.6, reconnect_backoff_s=(0.1, 0.2)
)


@dataclass(frozen=True)
class Handed:
    """A frame the worker handed on: when (the worker's own timestamp) and what it showed."""

    camera_id: str
    at: datetime
    digest: bytes
    mean: float


class Sink:
    def __init__(self) -> None:
        self.frames: list[Handed] = []

    def __call__(self, camera_id: str, frame: np.ndarray, at: datetime) -> None:
        digest = hashlib.blake2b(frame.tobytes(), digest_size=16).digest()
        self.frames.append(Handed(camera_id, at, digest, float(frame.mean())))


def _longest_unchanged_s(frames: list[Handed]) -> float:
    """The longest time one picture went on being handed on, bit for bit the same."""
    longest, first = 0.0, 0
    for i in range(1, len(frames)):
        if frames[i].digest != frames[first].digest:
            first = i
        longest = max(longest, (frames[i].at - frames[first].at).total_seconds())
    return longest


def _sim_worker(facility: Facility, fault: FaultKind, sink: Sink) -> CameraWorker:
    epoch = time.time()
    spec = FaultSpec(camera="T2-C2", kind=fault, start_s=1.5, duration_s=2.0)
    world = World(facility, Scenario(seed=5, horizon_h=1, faults=[spec]))
    url = SimUrl(camera_id="T2-C2", fps=15)
    return CameraWorker(
        "T2-C2",
        "edge-bay2",
        lambda: SimCamera(facility, world, url, epoch=epoch),
        CameraSettings(sample_fps=5),
        FAST,
        sink,
    )


@pytest.mark.parametrize(
    ("fault", "bad_state", "reason"),
    [
        (FaultKind.DROPOUT, CameraState.OFFLINE, "no frame"),
        (FaultKind.FROZEN, CameraState.STALLED, "frozen"),
        (FaultKind.BLACK, CameraState.STALLED, "black"),
    ],
)
def test_a_faulty_camera_is_reported_then_recovers(
    facility: Facility, fault: FaultKind, bad_state: CameraState, reason: str
) -> None:
    sink = Sink()
    worker = _sim_worker(facility, fault, sink)
    worker.start()
    try:
        wait_until(lambda: worker.status().state is CameraState.ONLINE, 3, "the camera to come online")
        # On a loaded machine a frame may come late enough for a brief "no frame" stall first.
        status = wait_until(
            lambda: (s := worker.status()).state is bad_state and reason in s.reason and s,
            4,
            f"the camera to be {bad_state.value}: {reason}",
        )
        assert reason in status.reason
        wait_until(lambda: worker.status().state is CameraState.ONLINE, 5, "the camera to recover")
        recovered = len(sink.frames)
        wait_until(lambda: len(sink.frames) >= recovered + 2, 5, "frames handed on after the recovery")
        reconnects = worker.status().reconnects_last_hour
    finally:
        worker.stop()
    frames = list(sink.frames)
    if fault is FaultKind.DROPOUT:
        assert reconnects >= 1
    elif fault is FaultKind.BLACK:
        # A black picture is never handed to the estimator.
        black = [f.at for f in frames if f.mean < FAST.black_level]
        assert not black, f"{len(black)} black frames handed on, the first at {black[0]}"
    else:
        # A frozen picture is handed on only until the worker can tell it is frozen (frozen_after_s,
        # on the worker's own timestamps), not for the rest of the fault.
        unchanged = _longest_unchanged_s(frames)
        assert unchanged <= FAST.frozen_after_s + 0.1, (
            f"the same picture was handed on for {unchanged:.2f} s; frozen after {FAST.frozen_after_s} s"
        )


def test_sampling_follows_the_configured_rate(facility: Facility) -> None:
    sink = Sink()
    world = World(facility, Scenario(seed=5, horizon_h=1))
    worker = CameraWorker(
        "T2-C2",
        "edge-bay2",
        lambda: SimCamera(facility, world, SimUrl(camera_id="T2-C2", fps=20)),
        CameraSettings(sample_fps=4),
        FAST,
        sink,
    )
    worker.start()
    try:
        wait_until(lambda: len(sink.frames) >= 9, 10, "nine sampled frames")
    finally:
        worker.stop()
    # Sampling thins the camera's frames to the configured rate, however fast the frames came: on
    # the worker's own timestamps, n frames sampled at 4 per second span at least (n - 1.5) / 4 s
    # (a late frame is made up for by at most half a period), and each comes at least half a period
    # after the one before. The camera's other frames are not handed on.
    frames = list(sink.frames)
    span = (frames[-1].at - frames[0].at).total_seconds()
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(frames)]
    assert len(frames) <= (span + 0.02) * 4 + 1.5, f"{len(frames)} frames sampled in {span:.2f} s at 4 fps"
    assert min(gaps) >= 0.125 - 0.01, f"two frames sampled {min(gaps):.3f} s apart"
    assert worker.frames_total >= 2 * len(frames)


def test_a_file_that_ends_goes_offline_and_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(30, 220, (240, 320, 3), dtype=np.uint8))
    writer.release()
    sink = Sink()
    worker = CameraWorker(
        "T1-C1",
        "edge-bay1",
        lambda: open_video(str(path), 2.0, pace_files=False),
        CameraSettings(sample_fps=30),
        FAST,
        sink,
    )
    states = []
    worker.start()
    try:
        wait_until(
            lambda: states.append(worker.status().state) or worker.status().reconnects_last_hour >= 1,
            10,
            "the file to be reopened",
        )
    finally:
        worker.stop()
    assert CameraState.OFFLINE in states
    assert worker.frames_total > 10


def test_a_file_is_played_at_its_own_frame_rate(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 20, (160, 120))
    for i in range(40):
        writer.write(np.full((120, 160, 3), 40 + i * 4, np.uint8))
    writer.release()
    source = open_video(str(path), 2.0)
    started = time.monotonic()
    frames = sum(1 for _ in range(20) if source.read()[0])
    elapsed = time.monotonic() - started
    source.release()
    assert frames == 20
    assert elapsed >= 0.9, f"20 frames of a 20 fps file came in {elapsed:.2f} s"


def test_a_source_that_cannot_open_is_offline_with_the_reason() -> None:
    worker = CameraWorker(
        "T1-C1", "edge-bay1", lambda: open_video("/nonexistent/clip.mp4", 1.0), CameraSettings(), FAST, Sink()
    )
    worker.start()
    try:
        status = wait_until(lambda: "cannot open" in (s := worker.status()).reason and s, 5, "a failed open")
    finally:
        worker.stop()
    assert status.state is CameraState.OFFLINE
    assert "cannot open /nonexistent/clip.mp4" in status.reason


def test_a_disabled_camera_reports_disabled(facility: Facility) -> None:
    world = World(facility, Scenario(seed=5, horizon_h=1))
    worker = CameraWorker(
        "T2-C2",
        "edge-bay2",
        lambda: SimCamera(facility, world, SimUrl(camera_id="T2-C2", fps=10)),
        CameraSettings(),
        FAST,
        Sink(),
    )
    worker.start()
    try:
        wait_until(lambda: worker.status().state is CameraState.ONLINE, 3, "online")
        worker.set_enabled(False)
        wait_until(lambda: worker.status().state is CameraState.DISABLED, 3, "disabled")
        worker.set_enabled(True)
        wait_until(lambda: worker.status().state is CameraState.ONLINE, 3, "online again")
    finally:
        worker.stop()
