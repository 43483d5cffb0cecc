"""Simulated camera footage as H.264 files, encoded by ffmpeg, for video-file and RTSP sources."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from shared.errors import SimulatorError
from shared.layout import Facility
from sim.source import SimCamera, SimUrl
from sim.world import World


def write_h264(
    facility: Facility,
    world: World,
    camera_id: str,
    path: Path,
    seconds: float,
    fps: float,
    start_s: float = 0.0,
) -> Path:
    """Render `seconds` of a camera at `fps` from simulation second `start_s` into an MP4 file."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SimulatorError("ffmpeg is not installed (Debian package ffmpeg)")
    cam = facility.cameras[camera_id]
    width, height = cam.resolution
    source = SimCamera(facility, world, SimUrl(camera_id=camera_id, realtime=False))
    command = [
        ffmpeg,
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        str(int(fps)),
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    with subprocess.Popen(command, stdin=subprocess.PIPE) as encoder:
        if encoder.stdin is None:
            raise RuntimeError("ffmpeg was started without a pipe to its stdin")
        for i in range(int(seconds * fps)):
            frame = source.frame_at(start_s + i / fps)
            if frame.image is not None:
                encoder.stdin.write(frame.image.tobytes())
        encoder.stdin.close()
        if encoder.wait() != 0:
            raise SimulatorError(f"ffmpeg failed to encode {path}")
    return path
