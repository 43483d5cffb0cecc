"""The MQTT topic namespace: the only place topics are built or parsed.

    depotwatch/v1/{site}/flow/{flow}/det/{node}/{camera}     Detection        QoS 1
    depotwatch/v1/{site}/flow/{flow}/thumb/{node}/{camera}   Thumbnail        QoS 1
    depotwatch/v1/{site}/node/{node}/state                   NodeLifecycle    QoS 1, retained, Last Will
    depotwatch/v1/{site}/node/{node}/status                  NodeStatus       QoS 1, retained
    depotwatch/v1/{site}/node/{node}/camera/{camera}/status  CameraStatus     QoS 1, retained
    depotwatch/v1/{site}/node/{node}/camera/{camera}/snapshot  Snapshot       QoS 1
    depotwatch/v1/{site}/node/{node}/cmd                     CommandRequest   QoS 1
    depotwatch/v1/{site}/node/{node}/cmd/ack                 CommandAck       QoS 1

Per-node subtrees keep broker ACLs simple: a node may write only where its own id stands.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel

from shared.errors import UnknownTopic
from shared.ids import is_identifier
from shared.messages import (
    MAX_SNAPSHOT_BYTES,
    CameraStatus,
    CommandAck,
    CommandRequest,
    Detection,
    NodeLifecycle,
    NodeStatus,
    Recognition,
    Snapshot,
    Thumbnail,
)

ROOT = "depotwatch/v1"


class TopicKind(StrEnum):
    """Every kind of topic in the namespace."""

    DETECTION = "det"
    THUMBNAIL = "thumb"
    RECOGNITION = "recog"
    NODE_STATE = "state"
    NODE_STATUS = "status"
    CAMERA_STATUS = "camera_status"
    SNAPSHOT = "snapshot"
    COMMAND = "cmd"
    COMMAND_ACK = "cmd_ack"


# Kinds published per data flow and per camera.
FLOW_KINDS = (TopicKind.DETECTION, TopicKind.THUMBNAIL, TopicKind.RECOGNITION)
# Kinds published per camera outside any flow.
CAMERA_KINDS = (TopicKind.CAMERA_STATUS, TopicKind.SNAPSHOT)


@dataclass(frozen=True)
class TopicSpec:
    """How a kind of topic is published."""

    payload: type[BaseModel]
    qos: int
    retain: bool
    max_bytes: int


TOPIC_SPECS: dict[TopicKind, TopicSpec] = {
    TopicKind.DETECTION: TopicSpec(Detection, 1, False, 64 * 1024),
    TopicKind.THUMBNAIL: TopicSpec(Thumbnail, 1, False, 600 * 1024),
    TopicKind.RECOGNITION: TopicSpec(Recognition, 1, False, 16 * 1024),
    TopicKind.NODE_STATE: TopicSpec(NodeLifecycle, 1, True, 16 * 1024),
    TopicKind.NODE_STATUS: TopicSpec(NodeStatus, 1, True, 16 * 1024),
    TopicKind.CAMERA_STATUS: TopicSpec(CameraStatus, 1, True, 16 * 1024),
    TopicKind.SNAPSHOT: TopicSpec(Snapshot, 1, False, MAX_SNAPSHOT_BYTES + 64 * 1024),
    TopicKind.COMMAND: TopicSpec(CommandRequest, 1, False, 16 * 1024),
    TopicKind.COMMAND_ACK: TopicSpec(CommandAck, 1, False, 16 * 1024),
}


@dataclass(frozen=True)
class Topic:
    """A parsed or to-be-built topic."""

    kind: TopicKind
    site: str
    node: str
    flow: str | None = None
    camera: str | None = None

    def __post_init__(self) -> None:
        needs_flow = self.kind in FLOW_KINDS
        needs_camera = needs_flow or self.kind in CAMERA_KINDS
        if needs_flow != (self.flow is not None) or needs_camera != (self.camera is not None):
            raise UnknownTopic(f"a {self.kind.value} topic needs flow={needs_flow}, camera={needs_camera}")
        for level in (self.site, self.node, self.flow, self.camera):
            if level is not None and not is_identifier(level):
                raise UnknownTopic(f"{level!r} cannot be a topic level")

    @property
    def spec(self) -> TopicSpec:
        """Payload model, QoS and retain flag of this topic."""
        return TOPIC_SPECS[self.kind]

    def __str__(self) -> str:
        return _render(self.kind, self.site, self.node, self.flow or "", self.camera or "")


@functools.lru_cache(maxsize=4096)  # a site's topics repeat (a few per camera); Topic is immutable
def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic; raises UnknownTopic for anything outside the namespace."""
    root_levels = ROOT.count("/") + 1
    levels = topic.split("/")
    if "/".join(levels[:root_levels]) != ROOT or len(levels) < root_levels + 3:
        raise UnknownTopic(f"{topic!r} is not under {ROOT}/")
    site, *rest = levels[root_levels:]
    match rest:
        case ["flow", flow, ("det" | "thumb" | "recog") as kind, node, camera]:
            return Topic(TopicKind(kind), site, node, flow=flow, camera=camera)
        case ["node", node, ("state" | "status" | "cmd") as kind]:
            return Topic(TopicKind(kind), site, node)
        case ["node", node, "camera", camera, "status"]:
            return Topic(TopicKind.CAMERA_STATUS, site, node, camera=camera)
        case ["node", node, "camera", camera, "snapshot"]:
            return Topic(TopicKind.SNAPSHOT, site, node, camera=camera)
        case ["node", node, "cmd", "ack"]:
            return Topic(TopicKind.COMMAND_ACK, site, node)
    raise UnknownTopic(f"{topic!r} matches no depotwatch topic")


def subscription(kind: TopicKind, site: str, *, flow: str = "+", node: str = "+", camera: str = "+") -> str:
    """A subscription filter for one kind of topic, with `+` wildcards where no id is given."""
    return _render(kind, site, node, flow, camera)


def shared_subscription(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription, so several cloud replicas split one stream."""
    if not is_identifier(group):
        raise UnknownTopic(f"{group!r} cannot name a shared subscription group")
    return f"$share/{group}/{topic_filter}"


def _render(kind: TopicKind, site: str, node: str, flow: str, camera: str) -> str:
    base = f"{ROOT}/{site}"
    match kind:
        case TopicKind.DETECTION | TopicKind.THUMBNAIL | TopicKind.RECOGNITION:
            return f"{base}/flow/{flow}/{kind.value}/{node}/{camera}"
        case TopicKind.NODE_STATE | TopicKind.NODE_STATUS | TopicKind.COMMAND:
            return f"{base}/node/{node}/{kind.value}"
        case TopicKind.CAMERA_STATUS:
            return f"{base}/node/{node}/camera/{camera}/status"
        case TopicKind.SNAPSHOT:
            return f"{base}/node/{node}/camera/{camera}/snapshot"
        case TopicKind.COMMAND_ACK:
            return f"{base}/node/{node}/cmd/ack"
