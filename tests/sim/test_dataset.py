"""Labelled datasets and the CLI that writes them."""

from __future__ import annotations

from pathlib import Path

import cv2
import yaml
from typer.testing import CliRunner

from depotwatch.cli import app
from shared.layout import Facility
from sim.dataset import read_labels, write_dataset
from sim.scenario import Scenario
from sim.truth import visible_extents
from sim.world import World
from tests.conftest import EXAMPLE_LAYOUT

runner = CliRunner()


def test_dataset_frames_and_labels_agree_with_the_world(facility: Facility, tmp_path: Path) -> None:
    scenario = Scenario(seed=17, horizon_h=12)
    labels_path = write_dataset(facility, scenario, tmp_path, frames=12, image_format="png")
    labels = read_labels(labels_path)
    assert len(labels) == 12
    world = World(facility, scenario)
    for label in labels:
        image = cv2.imread(str(tmp_path / label.file))
        cam = facility.cameras[label.camera_id]
        assert image.shape == (cam.resolution[1], cam.resolution[0], 3)
        assert label.extents == visible_extents(facility, label.camera_id, world.locos_at(label.t))
        assert label.view == (cam.view.start_m, cam.view.end_m)
    assert any(label.extents for label in labels)


def test_dataset_is_reproducible_for_a_seed(facility: Facility, tmp_path: Path) -> None:
    scenario = Scenario(seed=4, horizon_h=6)
    a = write_dataset(facility, scenario, tmp_path / "a", frames=3, image_format="png")
    b = write_dataset(facility, scenario, tmp_path / "b", frames=3, image_format="png")
    assert a.read_text() == b.read_text()
    for label in read_labels(a):
        assert (tmp_path / "a" / label.file).read_bytes() == (tmp_path / "b" / label.file).read_bytes()


def test_cli_writes_a_dataset_with_a_progress_bar(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sim",
            "dataset",
            "--out",
            str(tmp_path),
            "--frames",
            "4",
            "--seed",
            "3",
            "--layout",
            str(EXAMPLE_LAYOUT),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "rendering" in result.output
    assert len(read_labels(tmp_path / "labels.jsonl")) == 4


def test_cli_sim_frames_writes_day_and_night(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sim",
            "frames",
            "--out",
            str(tmp_path),
            "--cameras",
            "T1-C1,T2-C2",
            "--layout",
            str(EXAMPLE_LAYOUT),
        ],
    )
    assert result.exit_code == 0, result.output
    day, night = cv2.imread(str(tmp_path / "T1-C1_day.jpg")), cv2.imread(str(tmp_path / "T1-C1_night.jpg"))
    assert day.mean() > night.mean()
    assert (tmp_path / "contact_sheet.jpg").is_file()


def test_cli_layout_check_accepts_the_example_and_names_a_bad_key(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["layout", "check", str(EXAMPLE_LAYOUT)])
    assert ok.exit_code == 0, ok.output
    assert "16 cameras" in ok.output
    data = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    data["cameras"]["T2-C1"]["track"] = "T9"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["layout", "check", str(bad)])
    assert result.exit_code == 2
    assert "cameras.T2-C1.track" in result.output


def test_cli_rejects_an_unknown_camera(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "sim",
            "dataset",
            "--out",
            str(tmp_path),
            "--frames",
            "1",
            "--cameras",
            "T9-C1",
            "--layout",
            str(EXAMPLE_LAYOUT),
        ],
    )
    assert result.exit_code == 2
    assert "T9-C1" in result.output
