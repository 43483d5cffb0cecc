"""Bytes on the wire: JSON for every message but thumbnails, which travel as a binary frame.

A thumbnail frame is ``b"DWT1"``, a 4-byte big-endian header length, the UTF-8 JSON of its
`ThumbnailMeta`, then the JPEG bytes, so 10–40 KB images are not inflated by a third as base64 would.
`decode_message` is what consumers call: it checks the topic, the size, the payload against its
model, and that ids in the payload agree with the topic.
"""

from __future__ import annotations

import struct
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import MalformedPayload
from shared.messages import Message, Thumbnail, ThumbnailMeta
from shared.topics import FLOW_KINDS, Topic, TopicKind, parse_topic

THUMBNAIL_MAGIC = b"DWT1"
_HEADER_LEN = struct.Struct(">I")

M = TypeVar("M", bound=BaseModel)


def encode(message: Message) -> bytes:
    """Serialise a message for publishing."""
    if isinstance(message, Thumbnail):
        header = message.meta.model_dump_json().encode()
        return THUMBNAIL_MAGIC + _HEADER_LEN.pack(len(header)) + header + message.jpeg
    return message.model_dump_json().encode()


def decode(model: type[M], payload: bytes) -> M:
    """Parse a payload as `model`, strictly (a number given as a string, an integer as a float or a
    bool is refused, not coerced); raises MalformedPayload with the reason."""
    try:
        if model is Thumbnail:
            return model.model_validate(_thumbnail_fields(payload), strict=True)
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


def _thumbnail_fields(payload: bytes) -> dict[str, object]:
    if not payload.startswith(THUMBNAIL_MAGIC) or len(payload) < len(THUMBNAIL_MAGIC) + _HEADER_LEN.size:
        raise MalformedPayload("not a thumbnail frame: missing the DWT1 header")
    (length,) = _HEADER_LEN.unpack_from(payload, len(THUMBNAIL_MAGIC))
    start = len(THUMBNAIL_MAGIC) + _HEADER_LEN.size
    if start + length > len(payload):
        raise MalformedPayload(f"thumbnail header claims {length} bytes but the frame is shorter")
    try:
        meta = ThumbnailMeta.model_validate_json(payload[start : start + length], strict=True)
    except ValidationError as exc:
        raise MalformedPayload(f"invalid ThumbnailMeta: {_summarise(exc)}") from exc
    return {"meta": meta, "jpeg": payload[start + length :]}


def _check_ids(topic: Topic, message: Message) -> None:
    fields = message.meta if isinstance(message, Thumbnail) else message
    expected = {"node_id": topic.node}
    if topic.kind in FLOW_KINDS:
        expected |= {"flow": topic.flow or "", "camera_id": topic.camera or ""}
    elif topic.kind is TopicKind.CAMERA_STATUS:
        expected["camera_id"] = topic.camera or ""
    for name, value in expected.items():
        actual = getattr(fields, name, value)
        if actual != value:
            raise MalformedPayload(f"{name} {actual!r} in the payload does not match {value!r} in the topic")


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:5]]
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return "; ".join(parts) + more
