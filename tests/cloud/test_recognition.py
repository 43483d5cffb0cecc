"""Recognition with the shipped models: numbers read from fresh simulator thumbnails, garbage rejected
with a reason, and the whole path — edge thumbnails, the worker, the cloud's votes — ending in the
API showing a locomotive's series and number."""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import cv2
import numpy as np
import pytest

from cloud.auth import Role, create_key
from cloud.config import (
    CloudConfig,
    FlowConfig,
    FlowRecognition,
    IngestConfig,
    PlateFormat,
    RecognitionConfig,
)
from cloud.recognition.check_digits import CheckDigit
from cloud.recognition.errors import BadThumbnail
from cloud.recognition.number_reader import NumberReader
from cloud.recognition.plate_ocr import PlateReader
from cloud.recognition.plate_rules import PlateRules
from cloud.recognition.recogniser import Recogniser, decode_jpeg
from cloud.recognition.worker import RecognitionWorker, build_recogniser
from shared.codec import decode_message, encode
from shared.errors import MalformedPayload
from shared.layout import Facility
from shared.messages import LocoExtent, Recognition, Thumbnail, ThumbnailMeta, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from tests import factories
from tests.cloud.servers import Server
from tests.collector import Collector
from tests.conftest import EXAMPLE_LAYOUT, REPO, DatabaseFactory
from tests.waiting import wait_until
from training.recognition.thumbs import Thumb, generate

PLATE_MODEL = REPO / "ir_models" / "plate" / "1.0.0"
SERIES_MODEL = REPO / "ir_models" / "loco_model" / "1.0.0"


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
    reader = NumberReader(PlateReader(PLATE_MODEL), PlateRules(RecognitionConfig().plate_formats))
    readable = [t for t in thumbs if t.plate_visible]
    assert len(readable) >= 5
    read = [reader.read(t.image)[0] for t in readable]
    exact = sum(r is not None and r.plate == t.plate for r, t in zip(read, readable, strict=True))
    assert exact / len(readable) >= 0.9, [
        (t.plate, r and r.plate) for r, t in zip(read, readable, strict=True)
    ]
    # A number cut by the crop's edge is never completed into a wrong one, by joins or a closer look.
    partial = [t for t in thumbs if not t.plate_visible]
    wrong = [(t.plate, r.plate) for t in partial if (r := reader.read(t.image)[0]) and r.plate != t.plate]
    assert wrong == []


WAGON_FORMATS = {"wagon": PlateFormat(pattern=r"\d{8}", check_digit=CheckDigit.WAGON_1520)}


@pytest.mark.parametrize(("second", "number"), [("5312", "28005312"), ("5313", None)])
def test_a_number_painted_in_two_groups_is_read_whole_and_only_if_its_check_digit_holds(
    second: str, number: str | None
) -> None:
    # Two groups with a gap of 1.7 digit heights, as 1520 mm wagons carry them: two boxes to the detector.
    image = np.full((120, 600, 3), (60, 70, 80), np.uint8)
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1.6, 4
    (width, _), _ = cv2.getTextSize("2800", font, scale, thickness)
    for text, x in (("2800", 20), (second, 20 + width + 75)):
        cv2.putText(image, text, (x, 80), font, scale, (235, 235, 235), thickness, cv2.LINE_AA)
    reader = NumberReader(PlateReader(PLATE_MODEL), PlateRules(WAGON_FORMATS))
    reading, reads = reader.read(image)
    assert {"2800", second} <= {r.text for r in reads}
    assert (reading.plate if reading else None) == number


def test_the_closer_look_finds_a_small_plate_in_a_large_picture(facility: Facility) -> None:
    # A camera frame in the corner of a wide 2560 x 1440 view: on the detector's canvas its plate is a
    # quarter of its size, too small to read; the closer look reads it at full resolution.
    world = World(facility, Scenario(seed=961))
    shot = SimCamera(facility, world, SimUrl(camera_id="T1-C1", realtime=False)).frame_at(30000.0)
    assert shot.image is not None and [p.plate for p in shot.plates] == ["TE33A-9390"]
    wide = np.full((1440, 2560, 3), 90, np.uint8)
    wide[720:, 1280:] = shot.image
    reader = NumberReader(PlateReader(PLATE_MODEL), PlateRules(RecognitionConfig().plate_formats))
    assert reader.read(wide, closer=False)[0] is None
    reading, _ = reader.read(wide)
    assert reading is not None and reading.plate == "TE33A-9390"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "zero bytes"),
        (b"GIF89a" + b"\0" * 100, "not a JPEG"),
        (b"\xff\xd8\xff" + b"\0" * 200, "not a JPEG: segment at byte 2"),
        (b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024), "too large"),
    ],
)
def test_garbage_is_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadThumbnail, match=reason):
        decode_jpeg(data)


@pytest.mark.parametrize("side", [30_000, 65_000])
def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(
    side: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few hundred bytes declaring 30000 x 30000 px once took 12-33 s and 5 GB to decode before the
    size was checked; at 65000 px OpenCV raised. The header is read first now: nothing is decoded."""
    bomb = factories.jpeg_declaring(side, side)
    assert len(bomb) < 2000
    decoded: list[int] = []
    monkeypatch.setattr(cv2, "imdecode", lambda *_: decoded.append(1))
    with pytest.raises(BadThumbnail, match=f"{side}x{side} px is outside"):
        decode_jpeg(bomb)
    assert decoded == []
    topic = str(Topic(TopicKind.THUMBNAIL, "depot-north", "edge-bay1", flow="prod", camera="T1-C2"))
    frame = encode(factories.thumbnail()).replace(factories.jpeg_bytes(), bomb)
    with pytest.raises(MalformedPayload, match=f"declares {side}x{side} px"):
        decode_message(topic, frame)


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


def _worker(mqtt_url: str, site: str, flows: dict[str, FlowConfig] | None = None) -> RecognitionWorker:
    config = CloudConfig(
        layout=EXAMPLE_LAYOUT,
        broker=BrokerConfig(url=mqtt_url),
        ingest=IngestConfig(client_id="unused"),
        recognition=RecognitionConfig(client_id=f"recognition-{uuid.uuid4().hex[:6]}"),
        flows=flows or {"prod": FlowConfig()},
    )
    worker = RecognitionWorker.open(config, site)
    worker.start()
    assert worker.link.wait_connected(5) and worker.link.wait_subscribed(5)
    return worker


def _edge(mqtt_url: str) -> MqttConnection:
    edge = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    edge.start()
    assert edge.wait_connected(5)
    return edge


def _detect(edge: MqttConnection, facility: Facility, thumb: Thumb, flow: str) -> None:
    """The locomotive of `thumb`, seen three times by its camera in `flow`."""
    camera = facility.cameras[thumb.camera_id]
    start, end = thumb.span
    now = datetime.now(UTC)
    for k in range(3):
        detection = factories.detection(
            node_id=camera.node,
            camera_id=thumb.camera_id,
            track_id=camera.track,
            flow=flow,
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
        topic = Topic(TopicKind.DETECTION, facility.site, camera.node, flow=flow, camera=thumb.camera_id)
        edge.publish(str(topic), encode(detection))


def _send_thumbnails(edge: MqttConnection, facility: Facility, thumb: Thumb, count: int = 3) -> None:
    """The locomotive's thumbnails, as the edge sends them (prod only)."""
    camera = facility.cameras[thumb.camera_id]
    for _ in range(count):
        thumbnail = _thumbnail(_jpeg(thumb.image), thumb.span, thumb.camera_id)
        meta = thumbnail.meta.model_copy(update={"node_id": camera.node, "track_id": camera.track})
        topic = Topic(TopicKind.THUMBNAIL, facility.site, camera.node, flow="prod", camera=thumb.camera_id)
        edge.publish(str(topic), encode(Thumbnail(meta=meta, jpeg=thumbnail.jpeg)))


def test_the_api_shows_series_and_number_read_from_edge_thumbnails(
    server: Server, mqtt_url: str, facility: Facility, thumbs: list[Thumb]
) -> None:
    thumb = next(t for t in thumbs if t.plate_visible and t.camera_id.startswith("T1-"))
    worker = _worker(mqtt_url, facility.site)
    edge = _edge(mqtt_url)
    key = create_key(server.service.engine, Role.VIEWER)
    try:
        _detect(edge, facility, thumb, "prod")
        [loco] = wait_until(lambda: server.call("/api/locomotives", key)[1], 10, "the locomotive")
        _send_thumbnails(edge, facility, thumb)
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


def _relabelled_series_model(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A series model of another version whose classes are named one place on: the same network, so a
    dev flow's series differ from prod's in a way known in advance."""
    folder = tmp_path / "loco_model" / "1.1.0"
    shutil.copytree(SERIES_MODEL, folder)
    labels = json.loads((folder / "labels.json").read_text())
    classes = labels["classes"]
    renamed = dict(zip(classes, classes[1:] + classes[:1], strict=True))
    labels |= {"version": "1.1.0", "classes": [renamed[c] for c in classes]}
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder, renamed


def test_a_flow_with_models_of_its_own_reads_prod_thumbnails_with_them(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, thumbs: list[Thumb], tmp_path: Path
) -> None:
    thumb = next(t for t in thumbs if t.plate_visible and t.camera_id.startswith("T1-"))
    dev_model, renamed = _relabelled_series_model(tmp_path)
    flows = {"prod": FlowConfig(), "dev": FlowConfig(recognition=FlowRecognition(series_model_dir=dev_model))}
    with contextlib.ExitStack() as running:
        server = Server(database_factory(), mqtt_url, facility, flows=flows)
        running.callback(server.stop)
        worker = _worker(mqtt_url, facility.site, flows)
        running.callback(worker.stop)
        collector = Collector(mqtt_url, facility.site)
        running.callback(collector.stop)
        edge = _edge(mqtt_url)
        running.callback(edge.stop)
        key = create_key(server.service.engine, Role.VIEWER)

        def identified(flow: str) -> dict[str, Any] | None:
            locos = server.call(f"/api/locomotives?flow={flow}", key)[1]
            return locos[0] if locos and locos[0]["number"] and locos[0]["model"] else None

        for flow in flows:  # the shadow LPE's detections beside prod's
            _detect(edge, facility, thumb, flow)
        wait_until(lambda: all(server.call(f"/api/locomotives?flow={f}", key)[1] for f in flows), 10, "both")
        _send_thumbnails(edge, facility, thumb)
        prod = wait_until(lambda: identified("prod"), 30, "prod's identity")
        dev = wait_until(lambda: identified("dev"), 30, "dev's identity")
        # Each thumbnail read twice, by prod's models and by dev's (at least once each: QoS 1).
        readings = wait_until(
            lambda: (
                len(found := {(r.thumbnail_id, r.flow): r for r in collector.of(Recognition)}) == 6 and found
            ),
            5,
            "each thumbnail's reading in each flow",
        )
        comparison = server.call(
            "/api/flows/compare?a=prod&b=dev&step_s=1&"
            + urlencode({"since": datetime.now(UTC).isoformat(), "until": datetime.now(UTC).isoformat()}),
            key,
        )[1]
    assert prod["model"] == thumb.series and dev["model"] == renamed[thumb.series]
    assert prod["number"] == dev["number"] == thumb.plate  # the same plate model in both
    assert prod["loco_id"] != dev["loco_id"]
    series_models = {(r.flow, r.models[0].version) for r in readings.values()}
    assert series_models == {("prod", "1.0.0"), ("dev", "1.1.0")}
    assert comparison["matched"] == comparison["series_compared"] == comparison["series_differences"] == 1
    assert comparison["numbers_compared"] == 1 and comparison["number_differences"] == 0
