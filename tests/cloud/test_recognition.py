"""Recognition with the shipped models: numbers read from fresh simulator thumbnails, garbage rejected
with a reason, and the whole path — edge thumbnails, the worker, the cloud's votes — ending in the
API showing a locomotive's series and number."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud.auth import Role, create_key
from cloud.config import CloudConfig, IngestConfig, RecognitionConfig
from cloud.recognition.errors import BadThumbnail
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateRules
from cloud.recognition.recogniser import Recogniser, decode_jpeg
from cloud.recognition.worker import RecognitionWorker, build_recogniser
from shared.codec import decode_message, encode
from shared.errors import MalformedPayload
from shared.layout import Facility
from shared.messages import LocoExtent, Thumbnail, ThumbnailMeta, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.sim.scenario import Scenario
from shared.topics import Topic, TopicKind
from tests import factories
from tests.cloud.test_api import Server
from tests.conftest import EXAMPLE_LAYOUT, REPO, DatabaseFactory
from tests.waiting import wait_until
from training.recognition.thumbs import Thumb, generate

PLATE_MODEL = REPO / "ir_models" / "plate" / "1.0.0"


@pytest.fixture(scope="module")
def thumbs(facility: Facility) -> list[Thumb]:
    """Fresh thumbnails from a seed no model was trained or tuned on."""
    return generate(facility, Scenario(seed=951), [30000.0, 41000.0, 52000.0, 63000.0])


@pytest.fixture(scope="module")
def recogniser() -> Recogniser:
    return build_recogniser(CloudConfig(layout=EXAMPLE_LAYOUT))


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def _thumbnail(jpeg: bytes, span: tuple[float, float] = (14.0, 22.0), camera: str = "T1-C2") -> Thumbnail:
    meta = ThumbnailMeta(
        thumbnail_id=uuid.uuid4(),
        observation_id=uuid.uuid4(),
        node_id="edge-bay1",
        camera_id=camera,
        track_id=camera.split("-")[0],
        captured_at=datetime.now(UTC),
        extent_index=0,
        span=TrackSpan(start_m=span[0], end_m=span[1]),
        bbox=(0, 0, 64, 48),
    )
    return Thumbnail(meta=meta, jpeg=jpeg)


def test_numbers_on_fresh_thumbnails_are_read_exactly(thumbs: list[Thumb]) -> None:
    reader = PlateReader(PLATE_MODEL)
    rules = PlateRules(RecognitionConfig().plate_formats)
    readable = [t for t in thumbs if t.plate_visible]
    assert len(readable) >= 5
    read = [rules.interpret((r.text, r.confidence) for r in reader.read(t.image)) for t in readable]
    exact = sum(r is not None and r.plate == t.plate for r, t in zip(read, readable, strict=True))
    assert exact / len(readable) >= 0.9, [
        (t.plate, r and r.plate) for r, t in zip(read, readable, strict=True)
    ]
    # A number cut by the crop's edge is never completed into a wrong one.
    partial = [t for t in thumbs if not t.plate_visible]
    wrong = [
        (t.plate, r.plate)
        for t in partial
        if (r := rules.interpret((x.text, x.confidence) for x in reader.read(t.image))) and r.plate != t.plate
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "zero bytes"),
        (b"GIF89a" + b"\0" * 100, "not a JPEG"),
        (b"\xff\xd8\xff" + b"\0" * 200, "not a decodable JPEG"),
        (b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024), "too large"),
    ],
)
def test_garbage_is_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadThumbnail, match=reason):
        decode_jpeg(data)


def test_a_20_megabyte_thumbnail_never_gets_past_the_contract() -> None:
    topic = str(Topic(TopicKind.THUMBNAIL, "depot-north", "edge-bay1", flow="prod", camera="T1-C2"))
    with pytest.raises(MalformedPayload, match="exceed"):
        decode_message(topic, b"DWT1" + b"\0" * (20 * 1024 * 1024))


def test_noise_and_blank_pictures_are_rejected_not_named(recogniser: Recogniser) -> None:
    rng = np.random.default_rng(5)
    for image in (rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), np.full((360, 640, 3), 128, np.uint8)):
        result = recogniser.recognise(_thumbnail(_jpeg(image)))
        assert result.plate is None and result.series is None and "no locomotive" in result.rejected


@pytest.fixture
def server(database_factory: DatabaseFactory, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database_factory(), mqtt_url, facility)
    yield s
    s.stop()


def test_the_api_shows_series_and_number_read_from_edge_thumbnails(
    server: Server, mqtt_url: str, facility: Facility, thumbs: list[Thumb], tmp_path: Path
) -> None:
    thumb = next(t for t in thumbs if t.plate_visible and t.camera_id.startswith("T1-"))
    config = CloudConfig(
        layout=EXAMPLE_LAYOUT,
        broker=BrokerConfig(url=mqtt_url),
        ingest=IngestConfig(client_id="unused"),
        recognition=RecognitionConfig(client_id=f"recognition-{uuid.uuid4().hex[:6]}"),
    )
    worker = RecognitionWorker(config, facility.site)
    worker.start()
    assert worker.link.wait_connected(5) and worker.link.wait_subscribed(5)
    edge = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    edge.start()
    assert edge.wait_connected(5)
    key = create_key(server.service.engine, Role.VIEWER)
    camera = facility.cameras[thumb.camera_id]
    start, end = thumb.span
    try:
        now = datetime.now(UTC)
        for k in range(3):  # the locomotive, seen
            detection = factories.detection(
                node_id=camera.node,
                camera_id=thumb.camera_id,
                track_id=camera.track,
                seq=int(now.timestamp() * 1000) + k,
                captured_at=now + timedelta(milliseconds=100 * k),
                view=TrackSpan(start_m=camera.view.start_m, end_m=camera.view.end_m),
                extents=[
                    LocoExtent(
                        start_m=start,
                        end_m=end,
                        start_beyond_view=start <= camera.view.start_m,
                        end_beyond_view=end >= camera.view.end_m,
                        confidence=0.9,
                    )
                ],
            )
            topic = Topic(
                TopicKind.DETECTION, facility.site, camera.node, flow="prod", camera=thumb.camera_id
            )
            edge.publish(str(topic), encode(detection))
        [loco] = wait_until(lambda: server.call("/api/locomotives", key)[1], 10, "the locomotive")
        for _ in range(3):  # and its thumbnails, as the edge sends them
            thumbnail = _thumbnail(_jpeg(thumb.image), thumb.span, thumb.camera_id)
            meta = thumbnail.meta.model_copy(update={"node_id": camera.node, "track_id": camera.track})
            topic = Topic(
                TopicKind.THUMBNAIL, facility.site, camera.node, flow="prod", camera=thumb.camera_id
            )
            edge.publish(str(topic), encode(Thumbnail(meta=meta, jpeg=thumbnail.jpeg)))
        shown = wait_until(
            lambda: (r := server.call(f"/api/locomotives/{loco['loco_id']}", key)[1])["number"] and r,
            30,
            "the number to settle",
        )
        assert shown["number"] == thumb.plate and shown["model"] == thumb.series
        assert shown["number_confidence"] > 0.9
        status, jpeg = server.call(shown["thumbnail_url"], key)
        assert status == 200 and jpeg[:3] == b"\xff\xd8\xff"
        wanted = {f"number {thumb.plate}", f"series {thumb.series}"}
        wait_until(
            lambda: (
                {e["detail"] for e in server.call("/api/events?kind=identified", key)[1]["items"]} >= wanted
            ),
            5,
            "the identified events",
        )
    finally:
        edge.stop()
        worker.stop()
