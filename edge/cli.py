"""`depotwatch edge run`: the long-lived edge service."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from edge.config import load_edge_config
from edge.node import EdgeNode
from edge.sources import VIDEO_SOURCES, SourceRegistry, check_sources
from shared.envelope import ENVELOPE_FILE, load_envelope, mounting_warnings

log = logging.getLogger(__name__)


def check_edge(config_path: Path, sources: SourceRegistry = VIDEO_SOURCES) -> tuple[str, list[str]]:
    """Validate the config, its layout, model files and that `sources` opens every camera's source,
    without starting anything: a one-line summary, and a warning for each of the node's cameras
    mounted outside its LPE's envelope (shared.envelope)."""
    config, facility = load_edge_config(config_path)
    check_sources(config, facility, sources)
    cameras = sorted(facility.cameras_of_node(config.node_id))
    lpe = config.lpe
    summary = (
        f"{config.node_id}: {len(cameras)} cameras ({', '.join(cameras)}), flow {config.flow}, "
        f"LPE {lpe.model_dir} {lpe.precision} on {lpe.device}, broker {config.broker.url}"
    )
    envelope = load_envelope(lpe.model_dir)
    if envelope is None:
        return summary, [f"LPE {lpe.model_dir} declares no mounting envelope ({ENVELOPE_FILE})"]
    return summary, mounting_warnings(facility, envelope, cameras)


def run_edge(config_path: Path, sources: SourceRegistry = VIDEO_SOURCES) -> None:
    """Load the config (failing at start on any bad key, or on a camera source no opener in `sources`
    knows), run until SIGTERM or SIGINT."""
    config, facility = load_edge_config(config_path)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    EdgeNode.open(config, facility, sources).run(stop)
