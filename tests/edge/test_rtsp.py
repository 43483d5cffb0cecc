"""A real RTSP camera (GStreamer's RTSP server) that dies and comes back, beside a camera that
never stops."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from depotwatch.embedded_broker import free_port
from edge.capture import CameraWorker, open_video
from edge.config import CameraSettings, CaptureConfig
from shared.layout import Facility
from shared.messages import CameraState
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.video import write_h264
from sim.world import World
from tests.edge.test_capture import Sink
from tests.waiting import wait_until

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).resolve().parents[1] / "rtsp_server.py"


def _gst_available() -> bool:
    if shutil.which("ffmpeg") is None or not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(
    not _gst_available(),
    reason="needs ffmpeg and GStreamer's RTSP server (sudo make system-deps installs them)",
)


class RtspServer:
    def __init__(self, clip: Path) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self._clip = clip
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), "--port", str(self.port), str(self._clip)], stdout=subprocess.PIPE
        )
        assert self._process.stdout is not None
        self._process.stdout.readline()  # "serving ..."

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None


def test_rtsp_camera_goes_offline_when_its_server_dies_and_returns(
    facility: Facility, tmp_path: Path
) -> None:
    world = World(facility, Scenario(seed=9, horizon_h=1))
    clip = write_h264(facility, world, "T1-C2", tmp_path / "clip.mp4", seconds=30, fps=10)
    server = RtspServer(clip)
    server.start()
    capture = CaptureConfig(
        stall_after_s=1.0, offline_after_s=2.0, reconnect_backoff_s=(0.5, 1.0), open_timeout_s=2.0
    )
    rtsp_sink, sim_sink = Sink(), Sink()
    rtsp = CameraWorker(
        "T1-C2",
        "edge-bay1",
        lambda: open_video(server.url, 2.0),
        CameraSettings(sample_fps=5),
        capture,
        rtsp_sink,
    )
    steady = CameraWorker(
        "T1-C3",
        "edge-bay1",
        lambda: SimCamera(facility, world, SimUrl(camera_id="T1-C3", fps=10)),
        CameraSettings(sample_fps=5),
        capture,
        sim_sink,
    )
    rtsp.start()
    steady.start()
    try:
        wait_until(lambda: rtsp.status().state is CameraState.ONLINE, 20, "the RTSP camera online")
        server.kill()
        before = len(sim_sink.frames)
        wait_until(lambda: rtsp.status().state is CameraState.OFFLINE, 20, "the RTSP camera offline")
        assert len(sim_sink.frames) > before + 5, "the other camera stopped while the RTSP one failed"
        server.start()
        wait_until(lambda: rtsp.status().state is CameraState.ONLINE, 30, "the RTSP camera back online")
        assert rtsp.status().reconnects_last_hour >= 1
        assert steady.status().state is CameraState.ONLINE
    finally:
        rtsp.stop()
        steady.stop()
        server.kill()
