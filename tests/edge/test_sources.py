"""Camera sources through the registry: a scheme no opener knows fails at start naming the camera and
its key, the simulator's opener is one a composition root adds, and a node's simulated cameras show
one world. No broker, model or spool needed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.capture import CaptureError
from edge.cli import check_edge
from edge.config import EdgeConfig, SimConfig
from edge.node import EdgeNode
from edge.sources import VIDEO_SOURCES, camera_openers, check_sources
from shared.errors import ConfigError
from shared.layout import Facility, parse_facility
from sim.edge_source import with_sim
from sim.source import SimCamera
from tests.conftest import EXAMPLE_LAYOUT
from tests.edge.nodes import NODE, facility_data


def _config(tmp_path: Path, **changes: Any) -> EdgeConfig:
    fields: dict[str, Any] = {"node_id": NODE, "layout": EXAMPLE_LAYOUT, "spool": {"path": tmp_path / "s.db"}}
    return EdgeConfig(**(fields | changes))


def _depot(**sources: str) -> Facility:
    data = facility_data(f"test-{uuid.uuid4().hex[:8]}")
    for cid, source in sources.items():
        data["cameras"][cid]["source"] = source
    return parse_facility(data)


def test_a_simulated_camera_without_the_simulator_s_opener_fails_at_start_naming_camera_and_key(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    with pytest.raises(ConfigError) as raised:
        EdgeNode.open(config, _depot(), VIDEO_SOURCES)  # fails before any model or spool is opened
    error = raised.value
    assert error.source == str(EXAMPLE_LAYOUT)
    assert [i.key for i in error.issues] == [f"cameras.T1-C{n}.source" for n in range(1, 5)]
    assert "camera T1-C1: no source opener for sim:// URLs" in str(error)
    assert not (tmp_path / "s.db").exists()


def test_only_the_node_s_own_cameras_need_an_opener(tmp_path: Path) -> None:
    depot = _depot(**{"T1-C2": "rtsp://cam.example/2"})
    with pytest.raises(ConfigError) as raised:
        check_sources(_config(tmp_path), depot, VIDEO_SOURCES)
    assert [i.key for i in raised.value.issues] == [
        "cameras.T1-C1.source",
        "cameras.T1-C3.source",
        "cameras.T1-C4.source",
    ]
    check_sources(_config(tmp_path), depot, with_sim())


def test_edge_check_names_a_source_no_opener_knows(tmp_path: Path) -> None:
    layout = tmp_path / "facility.yaml"
    data = facility_data("test-check")
    data["cameras"]["T1-C3"]["source"] = "onvif://cam.example/3"
    layout.write_text(yaml.safe_dump(data))
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({"node_id": NODE, "layout": str(layout)}))
    with pytest.raises(
        ConfigError, match=r"cameras\.T1-C3\.source: camera T1-C3: no source opener for onvif://"
    ):
        check_edge(config, with_sim())
    data["cameras"]["T1-C3"]["source"] = "sim://T1-C3"
    layout.write_text(yaml.safe_dump(data))
    summary, warnings = check_edge(config, with_sim())
    assert summary.startswith(f"{NODE}: 4 cameras")
    assert warnings == []


def test_a_node_s_simulated_cameras_share_one_world_at_the_configured_speed(tmp_path: Path) -> None:
    depot = _depot(**{"T1-C2": "sim://T1-C2?speed=5"})
    openers = camera_openers(_config(tmp_path, sim=SimConfig(speed=20, seed=7)), depot, with_sim())
    assert sorted(openers) == ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]
    first, second = openers["T1-C1"](), openers["T1-C2"]()
    try:
        assert isinstance(first, SimCamera) and isinstance(second, SimCamera)
        assert first.world is second.world and first.world.scenario.seed == 7
        assert first.epoch == second.epoch
        assert (first.url.speed, second.url.speed) == (20, 5)  # the URL's own speed wins
    finally:
        first.release()
        second.release()


def test_a_video_file_that_is_not_there_is_that_camera_s_capture_error(tmp_path: Path) -> None:
    depot = _depot(**{"T1-C1": str(tmp_path / "missing.mp4")})
    openers = camera_openers(_config(tmp_path), depot, with_sim())
    with pytest.raises(CaptureError, match=r"missing\.mp4"):
        openers["T1-C1"]()
