"""The edge box as a Sparkplug B edge node (`sparkplug:` in its config): the node's own metrics (spool,
cameras online) and a device per camera (state, frame rates, reconnects, what its messages hold in the
spool), over the shared Sparkplug session; while the primary host is offline the spool publisher holds
the JSON detections back, as Sparkplug's store and forward asks."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping

from edge.capture import CameraWorker
from edge.config import SparkplugConfig
from edge.spool import Spool
from shared import __version__
from shared.errors import ContractError
from shared.messages import CameraState
from shared.mqtt import BrokerConfig
from shared.sparkplug.edge_node import NodeReport, SparkplugEdgeNode, metrics
from shared.sparkplug.payload import DataType, Metric
from shared.sparkplug.topics import default_host_id
from shared.topics import parse_topic

# Frame rates are reported to this step, so that jitter is not a DDATA every second.
FPS_STEP = 0.5
# The spool is counted per camera at most this often: the count scans it under the lock that the
# inference loop's writes take too, and while the primary host is offline it grows on purpose.
SPOOL_COUNT_EVERY_S = 10.0


class SpoolCounts:
    """What the spool holds per camera, counted again once the last count is `max_age_s` old."""

    def __init__(self, spool: Spool, max_age_s: float = SPOOL_COUNT_EVERY_S) -> None:
        self.spool = spool
        self.max_age_s = max_age_s
        self._counted: tuple[float, dict[str, int]] | None = None

    def per_camera(self) -> dict[str, int]:
        """Messages waiting per camera id ("" for those of no camera)."""
        now = time.monotonic()
        if self._counted is None or now - self._counted[0] >= self.max_age_s:
            waiting: dict[str, int] = {}
            for topic, count in self.spool.depth_by_topic().items():
                try:
                    camera = parse_topic(topic).camera or ""
                except ContractError:
                    camera = ""
                waiting[camera] = waiting.get(camera, 0) + count
            self._counted = (now, waiting)
        return self._counted[1]


def camera_node(
    config: SparkplugConfig,
    *,
    site: str,
    node_id: str,
    broker: BrokerConfig,
    workers: Mapping[str, CameraWorker],
    spool: Spool,
    on_host: Callable[[bool], None],
) -> SparkplugEdgeNode:
    """The node's Sparkplug session (not started)."""
    host = (config.primary_host_id or default_host_id(site)) if config.wait_for_primary_host else None
    return SparkplugEdgeNode(
        broker=broker,
        client_id=f"depotwatch-edge-{node_id}-sparkplug",
        group_id=config.group_id or site,
        node_id=node_id,
        report=functools.partial(camera_report, workers, spool, SpoolCounts(spool)),
        next_bd_seq=lambda: spool.next_counter("sparkplug_bd_seq"),
        primary_host_id=host,
        interval_s=config.interval_s,
        on_host=on_host,
    )


def camera_report(workers: Mapping[str, CameraWorker], spool: Spool, counts: SpoolCounts) -> NodeReport:
    """The node's and its cameras' metrics now."""
    waiting = counts.per_camera()
    devices = {}
    online = 0
    for camera_id, worker in sorted(workers.items()):
        status = worker.status()
        online += status.state is CameraState.ONLINE
        devices[camera_id] = metrics(
            Metric("State", DataType.STRING, status.state.value),
            Metric("Reason", DataType.STRING, status.reason),
            Metric("FPS Captured", DataType.DOUBLE, _step(status.fps_captured)),
            Metric("FPS Inferred", DataType.DOUBLE, _step(status.fps_inferred)),
            Metric("Reconnects Last Hour", DataType.INT32, status.reconnects_last_hour),
            Metric("Frames Dropped", DataType.UINT64, status.frames_dropped_total),
            Metric("Spool Depth", DataType.UINT64, waiting.get(camera_id, 0)),
        )
    node = metrics(
        Metric("Properties/Software Version", DataType.STRING, __version__),
        Metric("Spool Depth", DataType.UINT64, spool.depth()),
        Metric("Spool Dropped", DataType.UINT64, sum(spool.dropped.values())),
        Metric("Cameras Online", DataType.INT32, online),
        Metric("Cameras Total", DataType.INT32, len(workers)),
    )
    return NodeReport(node, devices)


def _step(fps: float) -> float:
    return round(fps / FPS_STEP) * FPS_STEP
