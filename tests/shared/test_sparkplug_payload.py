"""Sparkplug B payloads, STATE and topics against Eclipse Tahu's JavaScript codec: what depotwatch
encodes Tahu decodes to the same values and datatypes, and what Tahu encodes depotwatch decodes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import MalformedPayload
from shared.sparkplug import sparkplug_b_pb2 as pb
from shared.sparkplug.host_state import HostState
from shared.sparkplug.payload import DataType, Metric, decode_payload, encode_payload
from shared.sparkplug.topics import MessageType, node_topic, state_topic
from tests.sparkplug import TahuCodec

AT = datetime(2026, 12, 4, 21, 30, 15, 250_000, tzinfo=UTC)
METRICS = [
    Metric("bdSeq", DataType.INT64, 255),
    Metric("Offset", DataType.INT64, -3),
    Metric("Locomotive Count", DataType.INT32, -7),
    Metric("Spool Depth", DataType.UINT64, 2**40),
    Metric("Head m", DataType.DOUBLE, 36.25),
    Metric("Occupied", DataType.BOOLEAN, True),
    Metric("Number", DataType.STRING, "2ТЭ116-1520"),
    Metric("Series", DataType.STRING, None),
    Metric("Since", DataType.DATETIME, AT),
]
TAHU_TYPES = {
    DataType.INT32: "Int32",
    DataType.INT64: "Int64",
    DataType.UINT64: "UInt64",
    DataType.DOUBLE: "Double",
    DataType.BOOLEAN: "Boolean",
    DataType.STRING: "String",
    DataType.DATETIME: "DateTime",
}


def _as_tahu(value: object) -> object:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


def test_tahu_reads_what_we_encode(codec: TahuCodec) -> None:
    decoded = codec.decode(encode_payload(METRICS, timestamp_ms=1_796_419_000_000, seq=17))
    assert decoded["timestamp"] == 1_796_419_000_000 and decoded["seq"] == 17
    got = {m["name"]: (m["type"], m["value"], m["timestamp"]) for m in decoded["metrics"]}
    want = {m.name: (TAHU_TYPES[m.datatype], _as_tahu(m.value), 1_796_419_000_000) for m in METRICS}
    assert got == want


def test_we_read_what_tahu_encodes(codec: TahuCodec) -> None:
    tahu = codec.encode(
        {
            "timestamp": 1_796_419_000_000,
            "seq": 3,
            "metrics": [
                {"name": m.name, "type": TAHU_TYPES[m.datatype], "value": _as_tahu(m.value)}
                for m in METRICS
                if m.value is not None
                and m.datatype is not DataType.UINT64  # Tahu's encoder takes plain JS numbers (53 bits)
            ],
        }
    )
    payload = decode_payload(tahu)
    assert payload.seq == 3 and payload.timestamp_ms == 1_796_419_000_000
    expected = [m for m in METRICS if m.value is not None and m.datatype is not DataType.UINT64]
    assert payload.metrics == expected


def test_an_ndeath_has_no_seq_and_garbage_is_refused(codec: TahuCodec) -> None:
    death = encode_payload([Metric("bdSeq", DataType.INT64, 4)], timestamp_ms=1, seq=None)
    assert "seq" not in codec.decode(death)
    assert decode_payload(death).seq is None
    with pytest.raises(MalformedPayload):
        decode_payload(b"\xff\xff\xff")


def test_state_is_json_with_online_and_timestamp() -> None:
    state = HostState(True, 1_796_419_000_000)
    assert HostState.decode(state.encode()) == state
    assert HostState.decode(b'{"online": false, "timestamp": 5}') == HostState(False, 5)
    for bad in (b"ONLINE", b'{"online": "true", "timestamp": 5}', b'{"online": true}', b"[]"):
        with pytest.raises(MalformedPayload):
            HostState.decode(bad)


def test_topics_follow_the_namespace() -> None:
    assert (
        node_topic("depot-north", MessageType.NBIRTH, "edge-bay1") == "spBv1.0/depot-north/NBIRTH/edge-bay1"
    )
    assert (
        node_topic("depot-north", MessageType.DDATA, "facility", "track-T1")
        == "spBv1.0/depot-north/DDATA/facility/track-T1"
    )
    assert state_topic("depotwatch-depot-north") == "spBv1.0/STATE/depotwatch-depot-north"
    for bad in (
        lambda: node_topic("depot/north", MessageType.NBIRTH, "n"),
        lambda: node_topic("g", MessageType.DDATA, "n"),
        lambda: node_topic("g", MessageType.NDATA, "n", "d"),
        lambda: state_topic("host+1"),
    ):
        with pytest.raises(ValueError):
            bad()


def test_a_command_without_datatypes_is_read_by_its_value_field() -> None:
    # Hosts need not repeat datatypes in NCMD (the birth declared them): a Rebirth may come as a bare
    # boolean. Built field by field here, as such a host would send it.
    command = pb.Payload(timestamp=1)
    command.metrics.add(name="Node Control/Rebirth", boolean_value=True)
    command.metrics.add(name="Some Count", long_value=5)
    payload = decode_payload(command.SerializeToString())
    assert payload.value("Node Control/Rebirth") is True
    assert payload.value("Some Count") == 5
