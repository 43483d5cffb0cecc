"""The Sparkplug B topic namespace (specification chapter 4):

    spBv1.0/<group_id>/<NBIRTH|NDEATH|NDATA|NCMD>/<edge_node_id>
    spBv1.0/<group_id>/<DBIRTH|DDEATH|DDATA|DCMD>/<edge_node_id>/<device_id>
    spBv1.0/STATE/<host_id>

Group, node, device and host ids are single topic levels (`shared.ids.Identifier`), so none holds a
`/`, `+` or `#`."""

from __future__ import annotations

from enum import StrEnum

from shared.ids import is_identifier

NAMESPACE = "spBv1.0"


class MessageType(StrEnum):
    """The message types of an edge node and its devices."""

    NBIRTH = "NBIRTH"
    NDEATH = "NDEATH"
    NDATA = "NDATA"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDEATH = "DDEATH"
    DDATA = "DDATA"
    DCMD = "DCMD"


DEVICE_TYPES = frozenset({MessageType.DBIRTH, MessageType.DDEATH, MessageType.DDATA, MessageType.DCMD})


def node_topic(group_id: str, kind: MessageType, node_id: str, device_id: str | None = None) -> str:
    """The topic of an edge node's message, or of one of its devices' (`device_id` given)."""
    if (device_id is not None) != (kind in DEVICE_TYPES):
        raise ValueError(f"{kind} {'needs' if kind in DEVICE_TYPES else 'takes no'} device id")
    for value in (group_id, node_id, *([device_id] if device_id is not None else [])):
        if not is_identifier(value):
            raise ValueError(f"{value!r} cannot stand as a Sparkplug id (one topic level, no wildcards)")
    levels = [NAMESPACE, group_id, kind.value, node_id]
    return "/".join([*levels, device_id] if device_id is not None else levels)


def state_topic(host_id: str) -> str:
    """Where a host application keeps its retained STATE."""
    if not is_identifier(host_id):
        raise ValueError(f"{host_id!r} cannot stand as a Sparkplug host id")
    return f"{NAMESPACE}/STATE/{host_id}"


def default_host_id(site: str) -> str:
    """The primary host id the cloud takes, and edge nodes wait for, when none is configured."""
    return f"depotwatch-{site}"
