"""Sparkplug B payloads (specification chapter 6) to and from typed metrics, over the generated
protobuf module. Only the datatypes depotwatch publishes are mapped, each to the value field every
Sparkplug implementation agrees on: Int32 in `int_value` (two's complement), Int64, UInt64 and
DateTime (UTC milliseconds) in `long_value`, Double, Boolean and String in their own. A metric whose
value is None is sent as `is_null` with its datatype."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from google.protobuf.message import DecodeError

from shared.errors import MalformedPayload
from shared.sparkplug import sparkplug_b_pb2 as pb

MetricValue = bool | int | float | str | datetime | None

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


class DataType(IntEnum):
    """The Sparkplug datatypes depotwatch publishes (their numbers are the specification's)."""

    INT32 = pb.Int32
    INT64 = pb.Int64
    UINT64 = pb.UInt64
    DOUBLE = pb.Double
    BOOLEAN = pb.Boolean
    STRING = pb.String
    DATETIME = pb.DateTime


@dataclass(frozen=True)
class Metric:
    """One named value of a node or device."""

    name: str
    datatype: DataType
    value: MetricValue


@dataclass(frozen=True)
class Payload:
    """A decoded payload: its timestamp (UTC ms), its sequence number (None in an NDEATH) and metrics."""

    timestamp_ms: int | None
    seq: int | None
    metrics: list[Metric]

    def value(self, name: str) -> MetricValue:
        """The value of the metric called `name`; KeyError when there is none."""
        for metric in self.metrics:
            if metric.name == name:
                return metric.value
        raise KeyError(name)


def now_ms() -> int:
    """The current UTC time in milliseconds since the epoch, as Sparkplug timestamps are."""
    return int(datetime.now(UTC).timestamp() * 1000)


def encode_payload(metrics: Iterable[Metric], *, timestamp_ms: int, seq: int | None) -> bytes:
    """The protobuf bytes of a payload; each metric carries the payload's timestamp."""
    payload = pb.Payload(timestamp=timestamp_ms)
    if seq is not None:
        payload.seq = seq
    for metric in metrics:
        _encode_metric(payload.metrics.add(), metric, timestamp_ms)
    return payload.SerializeToString()


def _encode_metric(out: pb.Payload.Metric, metric: Metric, timestamp_ms: int) -> None:
    out.name = metric.name
    out.datatype = int(metric.datatype)
    out.timestamp = timestamp_ms
    value = metric.value
    if value is None:
        out.is_null = True
        return
    match metric.datatype:
        case DataType.BOOLEAN:
            out.boolean_value = bool(value)
        case DataType.STRING:
            out.string_value = str(value)
        case DataType.DOUBLE:
            out.double_value = float(value)  # type: ignore[arg-type]
        case DataType.INT32:
            out.int_value = int(value) & _U32  # type: ignore[arg-type]
        case DataType.INT64 | DataType.UINT64:
            out.long_value = int(value) & _U64  # type: ignore[arg-type]
        case DataType.DATETIME:
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ValueError(f"metric {metric.name}: a DateTime needs an aware datetime, not {value!r}")
            out.long_value = int(value.timestamp() * 1000)


def decode_payload(data: bytes) -> Payload:
    """Parse a payload; raises MalformedPayload when it is not one. Metrics of datatypes depotwatch
    does not publish come back with the value None."""
    payload = pb.Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedPayload(f"not a Sparkplug B payload: {exc}") from exc
    return Payload(
        timestamp_ms=payload.timestamp if payload.HasField("timestamp") else None,
        seq=payload.seq if payload.HasField("seq") else None,
        metrics=[_decode_metric(m) for m in payload.metrics],
    )


# The datatype a metric's value field implies, for a metric sent without one: the specification asks
# hosts not to repeat datatypes in NCMD and DCMD (the birth declared them).
_BY_FIELD = {
    "boolean_value": DataType.BOOLEAN,
    "string_value": DataType.STRING,
    "double_value": DataType.DOUBLE,
    "float_value": DataType.DOUBLE,
    "int_value": DataType.INT32,
    "long_value": DataType.INT64,
}


def _decode_metric(metric: pb.Payload.Metric) -> Metric:
    try:
        datatype = DataType(metric.datatype)
    except ValueError:
        implied = _BY_FIELD.get(metric.WhichOneof("value") or "")
        if implied is None or metric.datatype != pb.Unknown:
            return Metric(metric.name, DataType.STRING, None)
        datatype = implied
    if metric.is_null:
        return Metric(metric.name, datatype, None)
    value: MetricValue
    match datatype:
        case DataType.BOOLEAN:
            value = metric.boolean_value
        case DataType.STRING:
            value = metric.string_value
        case DataType.DOUBLE:
            value = metric.float_value if metric.WhichOneof("value") == "float_value" else metric.double_value
        case DataType.INT32:
            value = metric.int_value - (1 << 32) if metric.int_value >> 31 else metric.int_value
        case DataType.INT64:
            value = metric.long_value - (1 << 64) if metric.long_value >> 63 else metric.long_value
        case DataType.UINT64:
            value = metric.long_value
        case DataType.DATETIME:
            value = datetime.fromtimestamp(metric.long_value / 1000, UTC)
    return Metric(metric.name, datatype, value)
