"""Edge node benchmark: 8 cameras of 1280×720 H.264 at 25 fps (video files and RTSP), sampled to 2 fps.

    python -m bench.edge [--seconds 20] [--outage 60]

1. decoding alone: 8 threads decode the 8 streams as fast as they can: the unavoidable floor;
2. the node pushed to the maximum: the same files read unpaced through the whole pipeline;
3. real time: 4 files and 4 RTSP streams at 25 fps: does the node keep up, how many bytes does it
   publish per camera-second against streaming the sampled frames as JPEG;
4. outage: the broker stopped for 60 s under that load and restarted: detections lost (by sequence
   number at a subscriber) and the time the backlog takes to drain.
Prints a table and writes bench/results/edge.json. Needs ffmpeg and GStreamer's RTSP server (checked
first: exit status 2 with the install command when missing); a measurement that did not happen (a
camera that delivered no frame) is reported as such, with exit status 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import yaml

from bench import prerequisites
from bench.prerequisites import APT, Requirement
from bench.report import NotMeasured, Row, rate, report
from edge.config import CameraSettings, CaptureConfig, EdgeConfig, LpeConfig, MetricsConfig, SpoolConfig
from edge.lpe.model_files import model_path
from edge.node import EdgeNode
from shared.layout import Facility, load_facility, parse_facility
from shared.messages import Detection
from shared.mqtt import BrokerConfig
from sim.scenario import Scenario
from sim.video import write_h264
from sim.world import World
from tests.brokers import RestartableBroker
from tests.collector import Collector
from tests.conftest import MQTT_ENV

REPO = Path(__file__).resolve().parents[1]
LAYOUT = REPO / "examples" / "facility.yaml"
CLIPS = REPO / "data" / "bench" / "clips"
RESULTS = REPO / "bench" / "results" / "edge.json"
CAMERAS = ["T1-C1", "T1-C2", "T1-C3", "T1-C4", "T2-C1", "T2-C2", "T2-C3", "T2-C4"]
FPS = 25
CLIP_S = 12
LOOPS = 15  # the clip is repeated without re-encoding: 3 minutes of stream
SAMPLE_FPS = 2.0
RTSP_SERVER = REPO / "tests" / "rtsp_server.py"
DRAIN_LIMIT_S = 300


def clips(facility: Facility) -> dict[str, Path]:
    """One long H.264 file per camera, rendered once and cached."""
    CLIPS.mkdir(parents=True, exist_ok=True)
    world = World(facility, Scenario(seed=31, horizon_h=24))
    out = {}
    for cid in CAMERAS:
        long = CLIPS / f"{cid}_long.mp4"
        if not long.exists():
            short = write_h264(facility, world, cid, CLIPS / f"{cid}.mp4", CLIP_S, FPS, start_s=8 * 3600)
            subprocess.run(
                [
                    "ffmpeg",
                    "-loglevel",
                    "error",
                    "-y",
                    "-stream_loop",
                    str(LOOPS),
                    "-i",
                    str(short),
                    "-c",
                    "copy",
                    str(long),
                ],
                check=True,
            )
        out[cid] = long
    return out


def decode_only(files: dict[str, Path], seconds: float) -> float:
    """Frames per second all streams decode at, together, as fast as possible."""
    counts = dict.fromkeys(files, 0)
    stop = threading.Event()

    def run(cid: str, path: Path) -> None:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        while not stop.is_set() and cap.read()[0]:
            counts[cid] += 1
        cap.release()

    threads = [threading.Thread(target=run, args=item) for item in files.items()]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts.values()) / (time.perf_counter() - started)


def _facility(sources: dict[str, str], site: str) -> Facility:
    data = yaml.safe_load(LAYOUT.read_text())
    data["site"] = site
    for cid, source in sources.items():
        data["cameras"][cid]["source"] = source
    for cid in data["cameras"]:
        if data["cameras"][cid]["node"] == "edge-bay2":
            data["cameras"][cid]["node"] = "edge-bay1"  # one node with 8 cameras
    return parse_facility(data)


def _node(facility: Facility, broker_url: str, workdir: Path, pace: bool) -> EdgeNode:
    config = EdgeConfig(
        node_id="edge-bay1",
        layout=LAYOUT,
        broker=BrokerConfig(url=broker_url),
        spool=SpoolConfig(path=workdir / f"spool-{time.time_ns()}.sqlite", backlog_rate_per_s=200),
        # Worst case: every sampled frame is inferred and published (no motion gating).
        capture=CaptureConfig(
            defaults=CameraSettings(sample_fps=SAMPLE_FPS, motion_gating=False), pace_files=pace
        ),
        metrics=MetricsConfig(port=0),
    )
    return EdgeNode.open(config, facility)


class CpuByStage:
    """CPU seconds per group of threads of this process between `start()` and `stop()`."""

    GROUPS = (
        ("av:", "video decoding (FFmpeg threads)"),
        ("capture-", "capture threads (read, checks)"),
        ("edge-infer", "inference loop"),
        ("lpe", "inference loop"),
        ("edge-publish", "publishing"),
        ("mqtt-", "mqtt"),
        ("edge-status", "status"),
    )

    def __init__(self) -> None:
        self.process = psutil.Process()

    def _snapshot(self) -> dict[str, float]:
        names = {t.native_id: t.name for t in threading.enumerate()}
        out: dict[str, float] = {}
        for t in self.process.threads():
            name = names.get(t.id) or _native_name(t.id)
            group = next(
                (label for prefix, label in self.GROUPS if name.startswith(prefix)), "OpenVINO and other"
            )
            out[group] = out.get(group, 0.0) + t.user_time + t.system_time
        return out

    def start(self) -> None:
        """Begin measuring."""
        self._before, self._t0 = self._snapshot(), time.perf_counter()

    def stop(self) -> dict[str, float]:
        """CPU cores used by each group since `start()`."""
        after, wall = self._snapshot(), time.perf_counter() - self._t0
        return {k: (after.get(k, 0.0) - self._before.get(k, 0.0)) / wall for k in after}


def _native_name(tid: int) -> str:
    try:
        return Path(f"/proc/self/task/{tid}/comm").read_text().strip()
    except OSError:
        return ""


def pushed_to_max(files: dict[str, Path], broker_url: str, workdir: Path, seconds: float) -> dict[str, Any]:
    """Frames per second through the whole node on unpaced files, and its CPU by stage."""
    facility = _facility({cid: str(path) for cid, path in files.items()}, "bench-max")
    node = _node(facility, broker_url, workdir, pace=False)
    cpu = CpuByStage()
    node.start()
    time.sleep(2.0)
    start_frames = sum(w.frames_total for w in node.workers.values())
    cpu.start()
    time.sleep(seconds)
    frames = sum(w.frames_total for w in node.workers.values()) - start_frames
    stages = cpu.stop()
    node.stop()
    return {"fps": frames / seconds, "cpu_cores_by_stage": stages}


class Rtsp:
    """An RTSP server streaming one file, in a process of its own."""

    def __init__(self, path: Path, port: int) -> None:
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        self.process = subprocess.Popen(
            [prerequisites.gst_python(), str(RTSP_SERVER), "--port", str(port), str(path)],
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        if not self.process.stdout.readline().startswith(b"serving"):
            self.stop()
            raise RuntimeError(f"the RTSP server for {path} did not start (its errors are above)")

    def stop(self) -> None:
        """Kill the server."""
        self.process.kill()
        self.process.wait()


def real_time(files: dict[str, Path], workdir: Path, seconds: float, outage_s: float) -> dict[str, Any]:
    """Four files and four RTSP streams in real time, then a broker outage under that load."""
    from depotwatch.embedded_broker import free_port

    servers = [Rtsp(files[cid], free_port()) for cid in CAMERAS[4:]]
    sources = {cid: str(files[cid]) for cid in CAMERAS[:4]} | {
        cid: s.url for cid, s in zip(CAMERAS[4:], servers, strict=True)
    }
    broker = RestartableBroker(workdir)
    broker.start()
    facility = _facility(sources, "bench-rt")
    first = Collector(broker.url, "bench-rt")
    node = _node(facility, broker.url, workdir, pace=True)
    cpu = CpuByStage()
    result: dict[str, Any] = {}
    second = None
    try:
        node.start()
        time.sleep(5.0)
        sent_before = sum(
            node.metrics.published_bytes.labels(k)._value.get() for k in ("detection", "thumbnail")
        )
        inferred_before = {cid: w.frames_total for cid, w in node.workers.items()}
        cpu.start()
        time.sleep(seconds)
        result["cpu_cores_by_stage"] = cpu.stop()
        sent = sum(node.metrics.published_bytes.labels(k)._value.get() for k in ("detection", "thumbnail"))
        result["captured_fps_per_camera"] = {
            cid: (w.frames_total - inferred_before[cid]) / seconds for cid, w in node.workers.items()
        }
        result["inferred_fps_per_camera"] = {cid: w.fps_inferred for cid, w in node.workers.items()}
        result["sampled_frames_dropped"] = sum(w.frames_dropped_total for w in node.workers.values())
        result["bytes_per_camera_second"] = (sent - sent_before) / seconds / len(CAMERAS)
        result["jpeg_bytes_per_camera_second"] = _jpeg_rate(files)
        # Outage at full load.
        broker.stop()
        time.sleep(outage_s)
        backlog = node.spool.depth()
        broker.start()
        restarted = time.perf_counter()
        second = Collector(broker.url, "bench-rt")
        while node.spool.depth() > 0 and time.perf_counter() - restarted < DRAIN_LIMIT_S:
            time.sleep(0.1)
        result["backlog_after_outage"] = backlog
        result["drain_seconds"] = time.perf_counter() - restarted
        result["left_after_drain"] = node.spool.depth()
        time.sleep(2.0)
    finally:
        node.stop()
        for s in servers:
            s.stop()
        first.stop()
        if second is not None:
            second.stop()
        broker.stop()
    seqs = sorted({d.seq for d in first.of(Detection) + (second.of(Detection) if second else [])})
    result["detections_received"] = len(seqs)
    result["detections_lost"] = (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else -1
    return result


def _jpeg_rate(files: dict[str, Path]) -> float:
    """What streaming the sampled frames as JPEG (quality 85) would cost per camera-second."""
    sizes = []
    for path in files.values():
        cap = cv2.VideoCapture(str(path))
        for _ in range(3):
            ok, frame = cap.read()
            if ok:
                sizes.append(len(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]))
            for _ in range(FPS):
                cap.read()
        cap.release()
    return float(np.mean(sizes)) * SAMPLE_FPS


def requirements() -> list[Requirement]:
    """What this benchmark needs from the machine."""
    lpe = LpeConfig()
    needs = [
        prerequisites.executable("ffmpeg", f"{APT} ffmpeg"),
        prerequisites.rtsp_server(),
        prerequisites.ir_model(
            model_path(lpe.model_dir, lpe.precision),
            "run from the repository root, where ir_models/ holds the shipped models",
        ),
    ]
    if os.environ.get(MQTT_ENV):  # the restartable broker is then Mosquitto, not the embedded one
        needs.append(prerequisites.executable("mosquitto", f"{APT} mosquitto"))
    return needs


def rows(floor: float, pushed: dict[str, Any], live: dict[str, Any], outage_s: float) -> list[Row]:
    """The table; a figure whose measurement did not happen is `NotMeasured`, never 0."""

    def slowest(per_camera: dict[str, float], fmt: str, what: str) -> str | NotMeasured:
        silent = sorted(cid for cid, fps in per_camera.items() if not fps > 0)
        if silent or not per_camera:
            return NotMeasured(f"{what} from {', '.join(silent) or 'any camera'}")
        return fmt.format(min(per_camera.values()))

    both = "needs both figures above"
    published, jpeg = live["bytes_per_camera_second"], live["jpeg_bytes_per_camera_second"]
    backlog, left = live["backlog_after_outage"], live.get("left_after_drain", 0)
    drained: str | NotMeasured = NotMeasured("no backlog to drain")
    if left:
        drained = NotMeasured(f"{left} messages still spooled after {DRAIN_LIMIT_S} s")
    elif backlog > 0:
        drained = f"{live['drain_seconds']:.1f}"
    table: list[Row] = [
        ("decoding alone, 8 streams, frames/s", rate(floor, "{:.0f}", "no frame decoded"), ""),
        ("node pushed to the maximum, frames/s", rate(pushed["fps"], "{:.0f}", "no frame captured"), ""),
        ("node / decoding alone", rate(pushed["fps"] / floor if floor > 0 else 0, "{:.2f}", both), "≥ 0.80"),
        (
            "real time: captured fps per camera (min)",
            slowest(live["captured_fps_per_camera"], "{:.1f}", "no frame"),
            f"≈ {FPS}",
        ),
        (
            "real time: inferred fps per camera (min)",
            slowest(live["inferred_fps_per_camera"], "{:.2f}", "nothing inferred"),
            f"≈ {SAMPLE_FPS} (motion gating off: every sampled frame)",
        ),
        ("real time: sampled frames dropped", str(live["sampled_frames_dropped"]), "0"),
        (
            "bytes published per camera-second",
            rate(published, "{:.0f}", "the broker acknowledged nothing"),
            "",
        ),
        (
            "JPEG of the sampled frames per camera-second",
            rate(jpeg, "{:.0f}", "no frame read from the clips"),
            "",
        ),
        ("published / JPEG", rate(published / jpeg if jpeg > 0 else 0, "{:.4f}", both), "≤ 0.02"),
        (
            f"backlog after a {outage_s:.0f} s outage, messages",
            rate(backlog, "{}", "nothing was spooled during the outage"),
            "",
        ),
        ("backlog drained in, s", drained, "≤ 60"),
        (
            "detections received / lost",
            f"{live['detections_received']} / {live['detections_lost']}"
            if live["detections_received"] > 0
            else NotMeasured("no detection reached the subscriber"),
            "lost 0",
        ),
    ]
    for label, stages in (("max", pushed["cpu_cores_by_stage"]), ("real time", live["cpu_cores_by_stage"])):
        for stage, cores in sorted(stages.items(), key=lambda kv: -kv[1]):
            table.append((f"CPU cores, {label}: {stage}", f"{cores:.2f}", ""))
    return table


def main() -> None:
    """Run the measurements, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--outage", type=float, default=60.0)
    args = parser.parse_args()
    prerequisites.require("bench.edge", requirements())
    workdir = REPO / "data" / "bench" / "run"
    workdir.mkdir(parents=True, exist_ok=True)
    facility = load_facility(LAYOUT)
    files = clips(facility)
    floor = decode_only(files, args.seconds)
    broker = RestartableBroker(workdir)
    broker.start()
    try:
        pushed = pushed_to_max(files, broker.url, workdir, args.seconds)
    finally:
        broker.stop()
    live = real_time(files, workdir, args.seconds, args.outage)
    report(
        "Edge node, 8 cameras 1280×720 H.264 at 25 fps, sampled to 2 fps (this machine: 2 cores)",
        rows(floor, pushed, live, args.outage),
        RESULTS,
        {"decode_only_fps": floor, "pushed": pushed, "real_time": live},
    )


if __name__ == "__main__":
    main()
