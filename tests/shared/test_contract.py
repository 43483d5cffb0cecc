"""The message contract: every message round-trips, malformed payloads fail with a reason."""

from __future__ import annotations

import json
import queue
import uuid
from typing import get_args

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from pydantic import ValidationError

from shared.codec import SNAPSHOT_MAGIC, THUMBNAIL_MAGIC, decode, decode_message, encode
from shared.errors import MalformedPayload, UnknownTopic
from shared.jpeg import jpeg_size
from shared.layout import load_facility
from shared.messages import (
    MAX_SNAPSHOT_BYTES,
    MAX_SNAPSHOT_SIDE_PX,
    MAX_THUMBNAIL_BYTES,
    Command,
    Detection,
    Message,
    NodeState,
    Rebirth,
    RequestSnapshot,
    RequestThumbnail,
    SetCalibration,
    SetCameraEnabled,
    SetSampleRate,
    Snapshot,
    Thumbnail,
    TrackSpan,
    death_applies,
)
from shared.topics import TOPIC_SPECS, Topic, TopicKind, parse_topic, shared_subscription, subscription
from tests import factories
from tests.conftest import EXAMPLE_LAYOUT, REPO, MqttFactory

SITE = "depot-north"


def _examples() -> list[tuple[Topic, Message]]:
    return [
        (Topic(TopicKind.DETECTION, SITE, "edge-bay1", flow="prod", camera="T1-C2"), factories.detection()),
        (Topic(TopicKind.THUMBNAIL, SITE, "edge-bay1", flow="prod", camera="T1-C2"), factories.thumbnail()),
        (
            Topic(TopicKind.RECOGNITION, SITE, "edge-bay1", flow="prod", camera="T1-C2"),
            factories.recognition(),
        ),
        (Topic(TopicKind.NODE_STATE, SITE, "edge-bay1"), factories.node_birth()),
        (Topic(TopicKind.NODE_STATUS, SITE, "edge-bay1"), factories.node_status()),
        (Topic(TopicKind.CAMERA_STATUS, SITE, "edge-bay1", camera="T1-C2"), factories.camera_status()),
        (Topic(TopicKind.SNAPSHOT, SITE, "edge-bay1", camera="T1-C2"), factories.snapshot()),
        (Topic(TopicKind.COMMAND, SITE, "edge-bay1"), factories.command()),
        (Topic(TopicKind.COMMAND_ACK, SITE, "edge-bay1"), factories.command_ack()),
    ]


def test_examples_cover_every_topic_kind() -> None:
    assert {topic.kind for topic, _ in _examples()} == set(TopicKind)


def _commands() -> list[Command]:
    camera = load_facility(EXAMPLE_LAYOUT).cameras["T1-C2"]
    return [
        Rebirth(),
        SetSampleRate(camera_id="T1-C2", fps=1.0),
        SetCameraEnabled(camera_id="T1-C2", enabled=False),
        RequestThumbnail(camera_id="T1-C2", span=TrackSpan(start_m=14.0, end_m=18.0)),
        RequestSnapshot(camera_id="T1-C2"),
        SetCalibration(camera_id="T1-C2", calibration=camera.calibration, view=camera.view),
    ]


def test_command_examples_cover_every_command() -> None:
    (union, _) = get_args(Command)
    assert {type(command) for command in _commands()} == set(get_args(union))


@pytest.mark.parametrize("command", _commands(), ids=lambda c: c.action)
def test_every_command_round_trips_in_a_request(command: Command) -> None:
    topic = Topic(TopicKind.COMMAND, SITE, "edge-bay1")
    request = factories.command(command=command)
    _, decoded = decode_message(str(topic), encode(request))
    assert decoded.model_dump() == request.model_dump()


@pytest.mark.parametrize(("topic", "message"), _examples(), ids=lambda v: getattr(v, "kind", ""))
def test_every_message_round_trips_through_its_topic(topic: Topic, message: Message) -> None:
    parsed, decoded = decode_message(str(topic), encode(message))
    assert parsed == topic
    assert decoded == message
    assert isinstance(decoded, topic.spec.payload)


@pytest.mark.parametrize(("topic", "_message"), _examples(), ids=lambda v: getattr(v, "kind", ""))
def test_topic_string_parses_back_and_matches_its_subscription(topic: Topic, _message: Message) -> None:
    assert parse_topic(str(topic)) == topic
    assert mqtt.topic_matches_sub(subscription(topic.kind, SITE), str(topic))
    others = [k for k in TopicKind if k is not topic.kind]
    assert not any(mqtt.topic_matches_sub(subscription(k, SITE), str(topic)) for k in others)


def test_flow_filter_separates_prod_from_dev() -> None:
    dev = Topic(TopicKind.DETECTION, SITE, "edge-bay1", flow="dev", camera="T1-C2")
    assert not mqtt.topic_matches_sub(subscription(TopicKind.DETECTION, SITE, flow="prod"), str(dev))
    assert mqtt.topic_matches_sub(subscription(TopicKind.DETECTION, SITE, flow="dev"), str(dev))
    assert shared_subscription("cloud", "a/b") == "$share/cloud/a/b"


@pytest.mark.parametrize(
    "topic",
    [
        "depotwatch/v2/depot-north/node/n1/state",
        "other/v1/depot-north/node/n1/state",
        "depotwatch/v1/depot-north/node/n1/unknown",
        "depotwatch/v1/depot-north/flow/prod/det/n1",
        "depotwatch/v1/depot-north/flow/prod/det/n1/c1/extra",
        "depotwatch/v1/depot-north/flow/pr+od/det/n1/c1",
        "depotwatch/v1",
    ],
)
def test_topics_outside_the_namespace_are_rejected(topic: str) -> None:
    with pytest.raises(UnknownTopic):
        parse_topic(topic)


def test_a_topic_level_cannot_hold_a_wildcard() -> None:
    with pytest.raises(UnknownTopic, match="cannot be a topic level"):
        Topic(TopicKind.NODE_STATE, SITE, "edge/bay1")
    with pytest.raises(UnknownTopic, match="needs flow"):
        Topic(TopicKind.DETECTION, SITE, "edge-bay1")


DET_TOPIC = str(Topic(TopicKind.DETECTION, SITE, "edge-bay1", flow="prod", camera="T1-C2"))
THUMB_TOPIC = str(Topic(TopicKind.THUMBNAIL, SITE, "edge-bay1", flow="prod", camera="T1-C2"))
SNAP_TOPIC = str(Topic(TopicKind.SNAPSHOT, SITE, "edge-bay1", camera="T1-C2"))


def _detection_json(**changes: object) -> bytes:
    data = json.loads(encode(factories.detection()))
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json at all", "invalid Detection"),
        (b"", "invalid Detection"),
        (_detection_json(schema_version=2), "schema_version"),
        (_detection_json(seq=-1), "seq"),
        (_detection_json(captured_at="2026-03-02T10:00:00"), "captured_at"),
        (_detection_json(unexpected="x"), "unexpected"),
        (_detection_json(node_id="edge-bay2"), "does not match"),
        (_detection_json(camera_id="T1-C3"), "does not match"),
        (_detection_json(flow="dev"), "does not match"),
        (
            _detection_json(
                extents=[
                    {
                        "start_m": 40,
                        "end_m": 45,
                        "start_beyond_view": False,
                        "end_beyond_view": False,
                        "confidence": 0.9,
                    }
                ]
            ),
            "outside the view",
        ),
        (
            _detection_json(
                extents=[
                    {
                        "start_m": 20,
                        "end_m": 15,
                        "start_beyond_view": False,
                        "end_beyond_view": False,
                        "confidence": 0.9,
                    }
                ]
            ),
            "below start_m",
        ),
        (b"x" * (TOPIC_SPECS[TopicKind.DETECTION].max_bytes + 1), "exceed"),
    ],
)
def test_malformed_detection_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        decode_message(DET_TOPIC, payload)


def _extent_json(start_m: object, end_m: object) -> dict[str, object]:
    return {
        "start_m": start_m,
        "end_m": end_m,
        "start_beyond_view": False,
        "end_beyond_view": False,
        "confidence": 0.9,
    }


def _without(key: str) -> bytes:
    data = json.loads(encode(factories.detection()))
    del data[key]
    return json.dumps(data).encode()


def _raw(**changes: str) -> bytes:
    """The detection's JSON with fields replaced by raw JSON text (NaN, huge numbers: not what
    json.dumps writes)."""
    text = encode(factories.detection()).decode()
    for key, raw in changes.items():
        data = json.loads(text)
        text = text.replace(f'"{key}":{json.dumps(data[key], separators=(",", ":"))}', f'"{key}":{raw}')
        assert raw in text, key
    return text.encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # The wire states its version and types: nothing is guessed or coerced.
        (_without("schema_version"), "schema_version is required"),
        (_detection_json(seq="1234"), "seq"),
        (_detection_json(seq=1001.0), "seq"),
        (_detection_json(seq=True), "seq"),
        (_detection_json(historical=1), "historical"),
        # Every number within what a database column and the estimator can take.
        (_detection_json(seq=2**63), "seq"),
        (_detection_json(seq=10**30), "seq"),
        (
            _detection_json(captured_at="0001-01-01T00:00:00+14:00"),
            "captured_at: Input should be greater than or equal to 2000-01-01",
        ),
        (
            _detection_json(captured_at="9999-12-31T23:00:00-05:00"),
            "captured_at: Input should be less than 2100-01-01",
        ),
        (_raw(view='{"start_m":NaN,"end_m":27.3}'), "finite"),
        (_raw(view='{"start_m":13.4,"end_m":Infinity}'), "finite"),
        (_raw(view='{"start_m":-1e308,"end_m":1e308}'), "less than or equal to 100000"),
        (_detection_json(extents=[_extent_json(14, 1e6)]), "less than or equal to 100000"),
        (
            _raw(
                extents='[{"start_m":14,"end_m":NaN,"start_beyond_view":false,"end_beyond_view":false,"confidence":0.9}]'
            ),
            "finite",
        ),
        (_raw(camera='{"state":"online","fps":Infinity}'), "finite"),
        (_detection_json(camera={"state": "online", "fps": -1.0}), "fps"),
    ],
)
def test_the_wire_is_strict_and_bounded(payload: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        decode_message(DET_TOPIC, payload)


@pytest.mark.parametrize(
    ("topic", "message", "field", "value"),
    [
        (Topic(TopicKind.NODE_STATUS, SITE, "edge-bay1"), factories.node_status(), "spool_depth", 2**31),
        (Topic(TopicKind.NODE_STATE, SITE, "edge-bay1"), factories.node_birth(), "bd_seq", 2**40),
        (
            Topic(TopicKind.NODE_STATUS, SITE, "edge-bay1"),
            factories.node_status(),
            "at",
            "2999-01-01T00:00:00Z",
        ),
        (
            Topic(TopicKind.CAMERA_STATUS, SITE, "edge-bay1", camera="T1-C2"),
            factories.camera_status(),
            "fps_captured",
            "25",
        ),
    ],
)
def test_status_numbers_and_times_are_bounded_too(
    topic: Topic, message: Message, field: str, value: object
) -> None:
    data = json.loads(encode(message))
    data[field] = value
    with pytest.raises(MalformedPayload, match=field):
        decode_message(str(topic), json.dumps(data).encode())


def test_code_building_a_message_needs_no_version_but_the_wire_does() -> None:
    assert factories.detection().schema_version == 1
    assert b'"schema_version":1' in encode(factories.detection())


def test_a_jpegs_declared_size_is_read_from_its_header() -> None:
    assert jpeg_size(factories.jpeg_bytes(64, 48)) == (64, 48)
    ok, progressive = cv2.imencode(".jpg", np.zeros((30, 50, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok and jpeg_size(progressive.tobytes()) == (50, 30)
    assert jpeg_size(factories.jpeg_declaring(30_000, 20_000)) == (30_000, 20_000)
    for broken in (b"", b"GIF89a", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\x00\x00\x00\x00"):
        with pytest.raises(ValueError, match="not a JPEG"):
            jpeg_size(broken)


def test_malformed_thumbnails_are_rejected_with_a_reason() -> None:
    good = encode(factories.thumbnail())
    header_end = good.index(b"\xff\xd8\xff")
    cases = {
        b"GIF89a....": "missing the DWT1 header",
        THUMBNAIL_MAGIC + b"\x00\x00\x10\x00{}": "claims 4096 bytes",
        good[:header_end] + b"PNG not jpeg": "JPEG SOI",
        good[:header_end]
        + b"\xff\xd8\xff"
        + b"\x00" * MAX_THUMBNAIL_BYTES: f"at most {MAX_THUMBNAIL_BYTES} bytes",
        good + b"\x00" * TOPIC_SPECS[TopicKind.THUMBNAIL].max_bytes: "exceed",
        THUMBNAIL_MAGIC + b"\x00\x00\x00\x02{}" + b"\xff\xd8\xff\xe0": "invalid ThumbnailMeta",
    }
    for payload, reason in cases.items():
        with pytest.raises(MalformedPayload, match=reason):
            decode_message(THUMB_TOPIC, payload)


def _snapshot_frame(jpeg: bytes, **meta: object) -> bytes:
    """A snapshot frame of the factory's meta with `meta` changed (unchecked) and `jpeg`."""
    header = factories.snapshot().meta.model_copy(update=meta).model_dump_json().encode()
    return SNAPSHOT_MAGIC + len(header).to_bytes(4, "big") + header + jpeg


def test_malformed_snapshots_are_rejected_with_a_reason() -> None:
    big = factories.jpeg_declaring(MAX_SNAPSHOT_SIDE_PX + 1, 100)
    cases = {
        encode(factories.thumbnail()): "not a snapshot frame: missing the DWS1 header",
        _snapshot_frame(factories.jpeg_bytes(64, 48)): "jpeg declares 64x48 px, the metadata 160x90",
        _snapshot_frame(b"PNG not jpeg"): "JPEG SOI",
        _snapshot_frame(big, width=MAX_SNAPSHOT_SIDE_PX + 1, height=100): f"over {MAX_SNAPSHOT_SIDE_PX} px",
        _snapshot_frame(
            b"\xff\xd8\xff" + b"\x00" * MAX_SNAPSHOT_BYTES
        ): f"at most {MAX_SNAPSHOT_BYTES} bytes",
        encode(factories.snapshot()) + b"\x00" * TOPIC_SPECS[TopicKind.SNAPSHOT].max_bytes: "exceed",
        _snapshot_frame(factories.jpeg_bytes(160, 90), calibration_version="x" * 65): "calibration_version",
    }
    for payload, reason in cases.items():
        with pytest.raises(MalformedPayload, match=reason):
            decode_message(SNAP_TOPIC, payload)


def test_snapshot_frames_cut_short_are_rejected_with_the_exact_reason() -> None:
    for short in (b"", SNAPSHOT_MAGIC, SNAPSHOT_MAGIC + b"\x00\x00\x00", THUMBNAIL_MAGIC + b"\x00" * 8):
        with pytest.raises(MalformedPayload) as caught:
            decode_message(SNAP_TOPIC, short)
        assert str(caught.value) == "not a snapshot frame: missing the DWS1 header"
    reason, _ = _reason(Snapshot, SNAPSHOT_MAGIC + b"\x00\x00\x00\x00")
    assert reason.startswith("invalid SnapshotMeta: <root>: ")
    frame = _snapshot_frame(b"")
    reason, _ = _reason(Snapshot, frame)
    assert reason.startswith("invalid Snapshot: jpeg: ")
    length = int.from_bytes(frame[4:8], "big")
    reason, _ = _reason(Snapshot, frame[:-1])
    assert reason == f"snapshot header claims {length} bytes but the frame is shorter"


def test_decode_of_a_single_model_reports_the_field() -> None:
    with pytest.raises(MalformedPayload, match="extents"):
        decode(Detection, _detection_json(extents="many"))


def test_late_will_of_an_older_session_does_not_end_the_current_one() -> None:
    death = factories.node_birth(state=NodeState.OFFLINE, bd_seq=3)
    assert death_applies(3, death)
    assert not death_applies(4, death)
    assert death_applies(None, death)
    assert not death_applies(3, factories.node_birth(bd_seq=3))


def test_topics_document_lists_every_topic_and_payload() -> None:
    doc = (REPO / "docs" / "topics.md").read_text()
    for kind, spec in TOPIC_SPECS.items():
        example = str(next(topic for topic, _ in _examples() if topic.kind is kind))
        pattern = example.replace("depot-north", "{site}").replace("edge-bay1", "{node}")
        pattern = pattern.replace("T1-C2", "{camera}").replace("/prod/", "/{flow}/")
        assert pattern in doc, f"{pattern} missing from docs/topics.md"
        assert spec.payload.__name__ in doc


def test_messages_cross_a_real_broker_intact(mqtt_client: MqttFactory) -> None:
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    site = f"site-{uuid.uuid4().hex[:6]}"
    sub = mqtt_client()
    # amqtt 0.12 also hands a connecting client retained messages matching *other* sessions' filters:
    # keep only this test's site.
    mine = f"depotwatch/v1/{site}/#"
    sub.on_message = lambda _c, _u, msg: (
        mqtt.topic_matches_sub(mine, msg.topic) and received.put((msg.topic, msg.payload))
    )
    subscribed = queue.Queue[int]()
    sub.on_subscribe = lambda *_args: subscribed.put(1)
    sub.subscribe(mine, qos=1)
    subscribed.get(timeout=5)
    pub = mqtt_client()
    sent = {}
    for topic, message in _examples():
        topic = Topic(topic.kind, site, topic.node, topic.flow, topic.camera)
        sent[str(topic)] = message
        pub.publish(str(topic), encode(message), qos=1).wait_for_publish(timeout=5)
    for _ in sent:
        name, payload = received.get(timeout=5)
        _, decoded = decode_message(name, payload)
        assert decoded == sent[name]


# What follows pins the exact behaviour at each bound and the exact reasons, so that `make mutate
# MODULE=codec` (docs/testing.md) finds no small change to shared/codec.py that the tests let through.


def _reason(model: type[Message], payload: bytes) -> tuple[str, list[dict[str, object]]]:
    """The MalformedPayload's text and the pydantic errors it summarises."""
    with pytest.raises(MalformedPayload) as caught:
        decode(model, payload)
    cause = caught.value.__cause__
    errors = cause.errors() if isinstance(cause, ValidationError) else []
    return str(caught.value), [dict(error) for error in errors]


def test_a_payload_of_exactly_the_size_limit_is_taken() -> None:
    limit = TOPIC_SPECS[TopicKind.DETECTION].max_bytes
    message = factories.detection()
    payload = encode(message)
    assert decode_message(DET_TOPIC, payload + b" " * (limit - len(payload)))[1] == message


def test_a_reason_names_each_field_with_its_path_and_pydantics_words() -> None:
    reason, [error] = _reason(Detection, _detection_json(seq="1234"))
    assert reason == f"invalid Detection: seq: {error['msg']}"
    reason, [error] = _reason(Detection, _detection_json(extents=[_extent_json(14, "far")]))
    assert reason == f"invalid Detection: extents.0.end_m: {error['msg']}"
    reason, [error] = _reason(Detection, b"not json at all")
    assert reason == f"invalid Detection: <root>: {error['msg']}"


@pytest.mark.parametrize("missing", [5, 6, 8])
def test_a_reason_lists_five_errors_and_counts_the_rest(missing: int) -> None:
    data = json.loads(encode(factories.detection()))
    dropped = ["observation_id", "node_id", "camera_id", "track_id", "model", "captured_at", "seq", "view"]
    for key in dropped[:missing]:
        del data[key]
    reason, errors = _reason(Detection, json.dumps(data).encode())
    assert [e["loc"] for e in errors] == [(key,) for key in dropped[:missing]]
    listed = "; ".join(f"{key}: {errors[0]['msg']}" for key in dropped[:5])
    more = f" (+{missing - 5} more)" if missing > 5 else ""
    assert reason == f"invalid Detection: {listed}{more}"


def _frame(meta: bytes, jpeg: bytes) -> bytes:
    return THUMBNAIL_MAGIC + len(meta).to_bytes(4, "big") + meta + jpeg


def test_thumbnail_frames_cut_short_are_rejected_with_the_exact_reason() -> None:
    for short in (b"", THUMBNAIL_MAGIC, THUMBNAIL_MAGIC + b"\x00\x00\x00"):
        with pytest.raises(MalformedPayload) as caught:
            decode_message(THUMB_TOPIC, short)
        assert str(caught.value) == "not a thumbnail frame: missing the DWT1 header"
    # Exactly the magic and the length: a frame, whose (empty) header is then not a ThumbnailMeta.
    reason, _ = _reason(Thumbnail, THUMBNAIL_MAGIC + b"\x00\x00\x00\x00")
    assert reason.startswith("invalid ThumbnailMeta: <root>: ")
    # A header that ends exactly where the frame does leaves an empty JPEG, which Thumbnail refuses.
    meta = factories.thumbnail().meta.model_dump_json().encode()
    reason, _ = _reason(Thumbnail, _frame(meta, b""))
    assert reason.startswith("invalid Thumbnail: jpeg: ")
    reason, _ = _reason(Thumbnail, _frame(meta, b"")[:-1])
    assert reason == f"thumbnail header claims {len(meta)} bytes but the frame is shorter"


def test_a_thumbnails_header_is_parsed_strictly_too() -> None:
    meta = json.loads(factories.thumbnail().meta.model_dump_json())
    meta["extent_index"] = "0"
    reason, _ = _reason(Thumbnail, _frame(json.dumps(meta).encode(), factories.jpeg_bytes()))
    assert reason.startswith("invalid ThumbnailMeta: extent_index: ")


@pytest.mark.parametrize(
    ("topic", "message", "field"),
    [
        (THUMB_TOPIC, factories.thumbnail(node_id="edge-bay2"), "node_id 'edge-bay2'"),
        (THUMB_TOPIC, factories.thumbnail(camera_id="T1-C3"), "camera_id 'T1-C3'"),
        (
            str(Topic(TopicKind.CAMERA_STATUS, SITE, "edge-bay1", camera="T1-C2")),
            factories.camera_status(camera_id="T1-C3"),
            "camera_id 'T1-C3'",
        ),
        (SNAP_TOPIC, factories.snapshot(node_id="edge-bay2"), "node_id 'edge-bay2'"),
        (SNAP_TOPIC, factories.snapshot(camera_id="T1-C3"), "camera_id 'T1-C3'"),
    ],
)
def test_ids_in_picture_headers_and_camera_statuses_must_match_the_topic(
    topic: str, message: Message, field: str
) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode_message(topic, encode(message))
    expected = "'edge-bay1'" if field.startswith("node_id") else "'T1-C2'"
    assert str(caught.value) == f"{field} in the payload does not match {expected} in the topic"
