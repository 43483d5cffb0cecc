"""Benchmarks check what they need before measuring anything, and never print a measurement that did
not happen as a figure. Each benchmark runs as `python -m bench.<name>` would, on a machine made to
lack something: a PATH with nothing on it, a GStreamer Python that does not exist, a database port
nobody listens on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.edge import rows
from bench.prerequisites import GST_PYTHON_ENV, MISSING
from bench.report import FAILED, NotMeasured, report
from depotwatch.embedded_broker import free_port
from tests.conftest import MQTT_ENV, REPO

# Far less than any benchmark takes: what it may cost to find out that one cannot run.
CHECK_S = 60


def run_bench(
    module: str, tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {k: v for k, v in os.environ.items() if k != MQTT_ENV} | env
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=CHECK_S,
    )
    return done, time.monotonic() - started


def test_bench_edge_on_a_machine_without_gstreamer_says_what_to_install_and_measures_nothing(
    tmp_path: Path,
) -> None:
    """ffmpeg is there, GStreamer's RTSP server is not: the case that used to report 0.0 fps."""
    done, took = run_bench("bench.edge", tmp_path, **{GST_PYTHON_ENV: str(tmp_path / "no-python3")})
    assert done.returncode == MISSING, done.stdout + done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("bench.edge: ")] == [
        f"bench.edge: missing GStreamer RTSP server: {tmp_path / 'no-python3'} does not exist (set "
        f"{GST_PYTHON_ENV} to a Python with GStreamer's gi bindings); to fix: apt-get install -y ffmpeg "
        "python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
        "gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-rtsp",
        "bench.edge: nothing was measured",
    ]
    assert "results:" not in done.stdout and took < CHECK_S


def test_bench_edge_with_nothing_on_path_names_every_missing_program(tmp_path: Path) -> None:
    done, _ = run_bench(
        "bench.edge", tmp_path, PATH=str(tmp_path), **{GST_PYTHON_ENV: str(tmp_path / "no-python3")}
    )
    assert done.returncode == MISSING, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert "bench.edge: missing ffmpeg: `ffmpeg` is not on PATH; to fix: apt-get install -y ffmpeg" in lines
    assert any(line.startswith("bench.edge: missing GStreamer RTSP server: ") for line in lines)
    assert "results:" not in done.stdout


def test_bench_cloud_without_mosquitto_or_postgresql_says_what_to_install(tmp_path: Path) -> None:
    nobody = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    done, _ = run_bench("bench.cloud", tmp_path, "--database-url", nobody, PATH=str(tmp_path))
    assert done.returncode == MISSING, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert (
        "bench.cloud: missing mosquitto: `mosquitto` is not on PATH; to fix: apt-get install -y mosquitto"
        in lines
    )
    [postgres] = [line for line in lines if line.startswith("bench.cloud: missing PostgreSQL: ")]
    assert nobody in postgres and "does not answer" in postgres
    assert postgres.endswith(
        "to fix: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect "
        "$(ls /etc/postgresql | head -n 1) main start && psql -h 127.0.0.1 -U postgres -c "
        "'CREATE DATABASE test' (as .ci/run does), or pass --database-url"
    )
    assert "results:" not in done.stdout


def test_bench_lpe_with_no_model_where_it_is_pointed_says_so(tmp_path: Path) -> None:
    done, _ = run_bench("bench.lpe", tmp_path, "--model-dir", str(tmp_path / "lpe"))
    assert done.returncode == MISSING, done.stdout + done.stderr
    missing = [line for line in done.stderr.splitlines() if line.startswith("bench.lpe: missing ")]
    assert missing == [
        f"bench.lpe: missing OpenVINO model lpe_{p}: {tmp_path / 'lpe' / f'lpe_{p}.xml'} does not exist; "
        "to fix: pass --model-dir a folder holding lpe_fp32 and lpe_int8 (shipped: "
        f"{REPO / 'ir_models' / 'lpe' / '2.0.0'}; `make train-lpe` rebuilds them)"
        for p in ("fp32", "int8")
    ]


def test_cameras_that_delivered_no_frame_are_not_measured_rather_than_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The RTSP half of the real-time run got nothing: its fps is no figure, and the run fails."""
    live_cameras = ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]
    rtsp_cameras = ["T2-C1", "T2-C2", "T2-C3", "T2-C4"]
    live = {
        "cpu_cores_by_stage": {"video decoding (FFmpeg threads)": 1.2},
        "captured_fps_per_camera": dict.fromkeys(live_cameras, 25.0) | dict.fromkeys(rtsp_cameras, 0.0),
        "inferred_fps_per_camera": dict.fromkeys(live_cameras, 2.0) | dict.fromkeys(rtsp_cameras, 0.0),
        "sampled_frames_dropped": 0,
        "bytes_per_camera_second": 120.0,
        "jpeg_bytes_per_camera_second": 60_000.0,
        "backlog_after_outage": 480,
        "drain_seconds": 3.5,
        "left_after_drain": 0,
        "detections_received": 2000,
        "detections_lost": 0,
    }
    pushed = {"fps": 400.0, "cpu_cores_by_stage": {"inference loop": 0.5}}
    table = {label: value for label, value, _ in rows(500.0, pushed, live, 60.0)}
    silent = "T2-C1, T2-C2, T2-C3, T2-C4"
    assert table["real time: captured fps per camera (min)"] == NotMeasured(f"no frame from {silent}")
    assert table["real time: inferred fps per camera (min)"] == NotMeasured(f"nothing inferred from {silent}")
    assert table["node / decoding alone"] == "0.80" and table["published / JPEG"] == "0.0020"

    results = tmp_path / "edge.json"
    with pytest.raises(SystemExit) as exited:
        report("edge", list(rows(500.0, pushed, live, 60.0)), results, {"real_time": live})
    assert exited.value.code == FAILED
    printed = capsys.readouterr().out
    assert "not measured: no frame from" in printed and "0.0 " not in printed
    assert json.loads(results.read_text())["not_measured"] == {
        "real time: captured fps per camera (min)": f"no frame from {silent}",
        "real time: inferred fps per camera (min)": f"nothing inferred from {silent}",
    }
