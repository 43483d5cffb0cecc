"""Bytes on the wire: JSON for every message but pictures (thumbnails, snapshots), which travel as a
binary frame.

A picture frame is a 4-byte magic (``b"DWT1"`` for a thumbnail, ``b"DWS1"`` for a snapshot), a 4-byte
big-endian header length, the UTF-8 JSON of its metadata (`ThumbnailMeta`, `SnapshotMeta`), then the
JPEG bytes, so images are not inflated by a third as base64 would.
`decode_message` is what consumers call: it checks the topic, the size, the payload against its
model, and that ids in the payload agree with the topic.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import MalformedPayload
from shared.messages import Message, Snapshot, SnapshotMeta, Thumbnail, ThumbnailMeta
from shared.topics import CAMERA_KINDS, FLOW_KINDS, Topic, parse_topic

THUMBNAIL_MAGIC = b"DWT1"
SNAPSHOT_MAGIC = b"DWS1"
_HEADER_LEN = struct.Struct(">I")
# Each picture message: its magic and its metadata model.
_PICTURES: dict[type[BaseModel], tuple[bytes, type[BaseModel]]] = {
    Thumbnail: (THUMBNAIL_MAGIC, ThumbnailMeta),
    Snapshot: (SNAPSHOT_MAGIC, SnapshotMeta),
}

M = TypeVar("M", bound=BaseModel)


def encode(message: Message) -> bytes:
    """Serialise a message for publishing."""
    if isinstance(message, Thumbnail | Snapshot):
        magic, _ = _PICTURES[type(message)]
        header = message.meta.model_dump_json().encode()
        return magic + _HEADER_LEN.pack(len(header)) + header + message.jpeg
    return message.model_dump_json().encode()


def decode(model: type[M], payload: bytes) -> M:
    """Parse a payload as `model`, strictly (a number given as a string, an integer as a float or a
    bool is refused, not coerced); raises MalformedPayload with the reason."""
    try:
        if model in _PICTURES:
            return model.model_validate(_picture_fields(model, payload), strict=True)
        return model.model_validate_json(payload, strict=True)
    except ValidationError as exc:
        raise MalformedPayload(f"invalid {model.__name__}: {_summarise(exc)}") from exc


def decode_message(topic: str, payload: bytes) -> tuple[Topic, Message]:
    """Decode a payload received on `topic`; raises UnknownTopic or MalformedPayload."""
    parsed = parse_topic(topic)
    spec = parsed.spec
    if len(payload) > spec.max_bytes:
        raise MalformedPayload(f"{len(payload)} bytes exceed the {spec.max_bytes}-byte limit of {topic}")
    message: Message = decode(spec.payload, payload)  # type: ignore[assignment]
    _check_ids(parsed, message)
    return parsed, message


def _picture_fields(model: type[BaseModel], payload: bytes) -> dict[str, object]:
    magic, meta_model = _PICTURES[model]
    kind = model.__name__.lower()
    if not payload.startswith(magic) or len(payload) < len(magic) + _HEADER_LEN.size:
        raise MalformedPayload(f"not a {kind} frame: missing the {magic.decode()} header")
    (length,) = _HEADER_LEN.unpack_from(payload, len(magic))
    start = len(magic) + _HEADER_LEN.size
    if start + length > len(payload):
        raise MalformedPayload(f"{kind} header claims {length} bytes but the frame is shorter")
    try:
        meta = meta_model.model_validate_json(payload[start : start + length], strict=True)
    except ValidationError as exc:
        raise MalformedPayload(f"invalid {meta_model.__name__}: {_summarise(exc)}") from exc
    return {"meta": meta, "jpeg": payload[start + length :]}


def _check_ids(topic: Topic, message: Message) -> None:
    fields = message.meta if isinstance(message, Thumbnail | Snapshot) else message
    expected = {"node_id": topic.node}
    if topic.kind in FLOW_KINDS:
        expected |= {"flow": topic.flow or "", "camera_id": topic.camera or ""}
    elif topic.kind in CAMERA_KINDS:
        expected["camera_id"] = topic.camera or ""
    for name, value in expected.items():
        actual = getattr(fields, name, value)
        if actual != value:
            raise MalformedPayload(f"{name} {actual!r} in the payload does not match {value!r} in the topic")


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]]
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more
