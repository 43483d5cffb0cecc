"""Recording a flow's traffic from a real broker, reading it back, and replaying it into another flow."""

from __future__ import annotations

import gzip
import queue
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from depotwatch.cli import app
from depotwatch.recording import Recorder, RecordingError, read_header, read_recording, replay, retarget
from shared.codec import decode_message, encode
from shared.messages import Detection, Thumbnail
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind, subscription
from tests import factories
from tests.waiting import wait_until


def _publish(url: str, site: str, messages: list[tuple[str, Detection | Thumbnail]]) -> None:
    link = MqttConnection(BrokerConfig(url=url), f"edge-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    for flow, message in messages:
        kind = TopicKind.DETECTION if isinstance(message, Detection) else TopicKind.THUMBNAIL
        topic = Topic(kind, site, "edge-bay1", flow=flow, camera="T1-C2")
        assert link.publish(str(topic), encode(message)) is not None
    link.stop()


def test_a_recording_holds_the_flow_in_order_and_replays_into_another_flow(
    tmp_path: Path, mqtt_url: str
) -> None:
    site = f"test-{uuid.uuid4().hex[:8]}"
    detection = factories.detection(seq=1)
    thumb = factories.thumbnail(observation_id=detection.observation_id)
    other = factories.detection(seq=2, flow="dev")
    path = tmp_path / "prod.dwrec"
    recorder = Recorder(BrokerConfig(url=mqtt_url), site, "prod", path)
    recorder.start()
    _publish(mqtt_url, site, [("prod", detection), ("dev", other), ("prod", thumb)])
    wait_until(lambda: sum(recorder.counts.values()) == 2, 5, "two prod messages recorded")
    recorder.stop()

    assert read_header(path)["flow"] == "prod" and read_header(path)["site"] == site
    records = list(read_recording(path))
    assert [decode_message(r.topic, r.payload)[1] for r in records] == [detection, thumb]
    assert records[0].offset_s <= records[1].offset_s

    topic, payload = retarget(records[0].topic, records[0].payload, "replay")
    moved = decode_message(topic, payload)
    assert moved[0].flow == "replay" and isinstance(moved[1], Detection)
    assert moved[1].flow == "replay" and moved[1].observation_id != detection.observation_id
    assert retarget(records[0].topic, records[0].payload, "replay") == (topic, payload)  # deterministic
    replayed_thumb = decode_message(*retarget(records[1].topic, records[1].payload, "replay"))[1]
    assert isinstance(replayed_thumb, Thumbnail)
    assert replayed_thumb.meta.observation_id == moved[1].observation_id  # still points at its detection

    received: queue.Queue[str] = queue.Queue()
    listener = MqttConnection(BrokerConfig(url=mqtt_url), f"cloud-{uuid.uuid4().hex[:6]}")
    for kind in (TopicKind.DETECTION, TopicKind.THUMBNAIL):
        listener.subscribe(subscription(kind, site, flow="replay"), lambda t, _p: received.put(t))
    listener.start()
    assert listener.wait_connected(5) and listener.wait_subscribed(5)
    try:
        assert replay(path, BrokerConfig(url=mqtt_url), "replay", speed=None) == 2
        topics = [received.get(timeout=5) for _ in range(2)]
    finally:
        listener.stop()
    assert all("/flow/replay/" in t for t in topics)


def test_bad_recordings_and_replays_fail_with_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.dwrec"
    with gzip.open(garbage, "wb") as file:
        file.write(b'{"format": "something else"}\n')
    with pytest.raises(RecordingError, match="is not a depotwatch recording"):
        read_header(garbage)
    result = CliRunner().invoke(app, ["flow", "replay", str(garbage), "--into", "dev", "--config", "x.yaml"])
    assert result.exit_code == 2 and "is not a depotwatch recording" in " ".join(result.output.split())
