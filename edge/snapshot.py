"""One full-resolution picture of a camera, straight from its source, for commissioning (calibrating
it, checking its aim) without a running node or a cloud."""

from __future__ import annotations

from edge.capture import CaptureError
from edge.config import EdgeConfig
from edge.sources import SourceRegistry, camera_openers
from shared.errors import ConfigError, ConfigIssue
from shared.frames import Frame
from shared.layout import Facility

# Reads tried before giving up: a stream's first frames may not decode (no keyframe yet).
READS = 50


def take_snapshot(config: EdgeConfig, facility: Facility, camera_id: str, sources: SourceRegistry) -> Frame:
    """The camera's next frame that decodes; raises ConfigError for a camera not of this node and
    CaptureError when its source opens but gives no frame."""
    mine = facility.cameras_of_node(config.node_id)
    if camera_id not in mine:
        known = ", ".join(sorted(mine))
        raise ConfigError(
            str(config.layout),
            [ConfigIssue("cameras", f"{camera_id!r} is not a camera of {config.node_id} ({known})")],
        )
    source = camera_openers(config, facility, sources)[camera_id]()
    try:
        for _ in range(READS):
            ok, frame = source.read()
            if ok and frame is not None:
                return frame
    finally:
        source.release()
    raise CaptureError(
        f"camera {camera_id}: {facility.cameras[camera_id].source} gave no frame in {READS} reads"
    )
