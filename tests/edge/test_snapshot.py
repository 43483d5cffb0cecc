"""`depotwatch edge snapshot`: one full-resolution frame of a node's camera, from its source."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from tests.conftest import EXAMPLE_LAYOUT, REPO


def _config(tmp_path: Path, layout: Path = EXAMPLE_LAYOUT) -> Path:
    data = yaml.safe_load((REPO / "examples" / "edge.yaml").read_text())
    data["layout"] = str(layout)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_simulated_camera_is_written_at_full_resolution(tmp_path: Path) -> None:
    out = tmp_path / "snap.jpg"
    result = CliRunner().invoke(
        app, ["edge", "snapshot", "--config", str(_config(tmp_path)), "--camera", "T1-C2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (720, 1280, 3)
    assert float(image.std()) > 10  # a picture, not a blank


def test_a_video_file_source_gives_its_frame(tmp_path: Path) -> None:
    video = tmp_path / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (1280, 720))
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[:, :640] = (0, 0, 255)  # left half red
    for _ in range(5):
        writer.write(frame)
    writer.release()
    layout = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    layout["cameras"]["T1-C1"]["source"] = str(video)
    path = tmp_path / "facility.yaml"
    path.write_text(yaml.safe_dump(layout))
    out = tmp_path / "snap.jpg"
    result = CliRunner().invoke(
        app,
        [
            "edge",
            "snapshot",
            "--config",
            str(_config(tmp_path, path)),
            "--camera",
            "T1-C1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (720, 1280, 3)
    assert image[360, 100, 2] > 200 and image[360, 1100, 2] < 50


def test_a_camera_of_another_node_is_refused_naming_the_node(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "edge",
            "snapshot",
            "--config",
            str(_config(tmp_path)),
            "--camera",
            "T2-C2",
            "--out",
            str(tmp_path / "x.jpg"),
        ],
    )
    assert result.exit_code == 2
    assert "'T2-C2' is not a camera of edge-bay1" in result.stderr
    assert not (tmp_path / "x.jpg").exists()
