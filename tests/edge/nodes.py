"""The edge node under test: the example depot under a site of its own, a node config, a command."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from edge.config import CameraSettings, CaptureConfig, EdgeConfig, MetricsConfig, SpoolConfig
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests.conftest import EXAMPLE_LAYOUT

NODE = "edge-bay1"


def facility_data(site: str) -> dict[str, Any]:
    """The example depot under a site id of its own, cameras at 4 frames per second."""
    data = copy.deepcopy(yaml.safe_load(EXAMPLE_LAYOUT.read_text()))
    data["site"] = site
    for cid, cam in data["cameras"].items():
        cam["source"] = f"sim://{cid}?fps=4"
    return data


def node_config(tmp_path: Path, url: str, **changes: Any) -> EdgeConfig:
    fields: dict[str, Any] = {
        "node_id": NODE,
        "layout": EXAMPLE_LAYOUT,
        "broker": BrokerConfig(url=url, keepalive_s=5),
        "spool": SpoolConfig(path=tmp_path / "spool.sqlite", backlog_rate_per_s=400),
        "capture": CaptureConfig(defaults=CameraSettings(sample_fps=4, motion_gating=False)),
        "metrics": MetricsConfig(port=0),
        "status_interval_s": 1.0,
    }
    return EdgeConfig(**(fields | changes))


def send_command(site: str, payload: bytes, url: str) -> None:
    link = MqttConnection(BrokerConfig(url=url), f"cloud-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    link.publish(str(Topic(TopicKind.COMMAND, site, NODE)), payload)
    link.stop()  # once the broker has acknowledged the command


def edge_process(tmp_path: Path, site: str, url: str, **settings: Any) -> subprocess.Popen[bytes]:
    """`depotwatch edge run` in a process of its own (so that it can be killed with SIGKILL), as node
    edge-bay1 of the example depot under `site`, with `settings` added to its config."""
    layout = tmp_path / "facility.yaml"
    layout.write_text(yaml.safe_dump(facility_data(site)))
    config = {
        "node_id": NODE,
        "layout": str(layout),
        "broker": {"url": url, "keepalive_s": 5},
        "spool": {"path": str(tmp_path / "spool.sqlite")},
        "metrics": {"port": 0},
    } | settings
    config_path = tmp_path / "edge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return subprocess.Popen(
        [sys.executable, "-m", "depotwatch.cli", "edge", "run", "--config", str(config_path)],
        cwd=Path(__file__).resolve().parents[2],
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
