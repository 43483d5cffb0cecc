"""The message contract: every message round-trips, malformed payloads fail with a reason."""

from __future__ import annotations

import json
import queue
import uuid

import paho.mqtt.client as mqtt
import pytest

from shared.codec import THUMBNAIL_MAGIC, decode, decode_message, encode
from shared.errors import MalformedPayload, UnknownTopic
from shared.messages import (
    MAX_THUMBNAIL_BYTES,
    Detection,
    Message,
    NodeState,
    death_applies,
)
from shared.topics import TOPIC_SPECS, Topic, TopicKind, parse_topic, shared_subscription, subscription
from tests import factories
from tests.conftest import REPO, MqttFactory

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
        (Topic(TopicKind.COMMAND, SITE, "edge-bay1"), factories.command()),
        (Topic(TopicKind.COMMAND_ACK, SITE, "edge-bay1"), factories.command_ack()),
    ]


def test_examples_cover_every_topic_kind() -> None:
    assert {topic.kind for topic, _ in _examples()} == set(TopicKind)


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
