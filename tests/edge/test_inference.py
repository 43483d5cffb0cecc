"""The inference loop on its own (no broker, no camera, no model: an estimator that answers from a
table): every inferred frame is spooled as a numbered detection of its flow, a shadow flow numbers its
own, and a frame the estimator rejects costs that frame only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.aggregate import LatestFrames
from edge.capture import CameraWorker, FrameSource
from edge.config import CameraSettings, CaptureConfig, ThumbnailConfig
from edge.inference import InferenceLoop
from edge.lpe.estimator import PositionEstimator
from edge.observability import EdgeMetrics
from edge.spool import Kind, Spool
from edge.thumbnails import ThumbnailMaker
from shared.codec import decode
from shared.frames import Frame
from shared.layout import Camera, Facility
from shared.messages import Detection, LocoExtent, ModelRef
from shared.strip import FrameError
from shared.topics import Topic, TopicKind
from tests.edge.nodes import NODE
from tests.factories import extent
from tests.waiting import wait_until

GREY = np.full((720, 1280, 3), 90, np.uint8)


class TableEstimator:
    """A stand-in for the LPE: the same extents for every frame of a camera; frames of `rejects`
    raise FrameError, as a frame of the wrong shape does."""

    def __init__(self, version: str, extents: dict[str, list[LocoExtent]], rejects: set[str]) -> None:
        self._model = ModelRef(name="lpe", version=version)
        self.extents, self.rejects = extents, rejects

    @property
    def model(self) -> ModelRef:
        return self._model

    def estimate(self, frames: Sequence[tuple[str, Frame]]) -> list[list[LocoExtent]]:
        if any(cid in self.rejects for cid, _ in frames):
            raise FrameError("not a frame of this camera")
        return [self.extents.get(cid, []) for cid, _ in frames]

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        """The table's extents are the same whatever the calibration."""


def _never_opened() -> FrameSource:
    raise AssertionError("the loop never opens a camera")


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.sqlite", 10_000_000)
    yield s
    s.close()


def _loop(
    facility: Facility,
    spool: Spool,
    estimator: PositionEstimator,
    shadows: dict[str, PositionEstimator] | None = None,
) -> tuple[InferenceLoop, LatestFrames]:
    cameras = facility.cameras_of_node(NODE)
    settings = CameraSettings(motion_gating=False)
    capture = CaptureConfig(defaults=settings)
    frames = LatestFrames(on_drop=lambda _cid: None)
    workers = {
        cid: CameraWorker(cid, NODE, _never_opened, settings, capture, frames.put) for cid in sorted(cameras)
    }
    loop = InferenceLoop(
        site=facility.site,
        node_id=NODE,
        flow="prod",
        cameras=cameras,
        workers=workers,
        frames=frames,
        estimator=estimator,
        shadow_estimators=shadows or {},
        spool=spool,
        thumbnails=ThumbnailMaker(cameras, ThumbnailConfig(enabled=False)),
        metrics=EdgeMetrics(),
        spooled=lambda: None,
    )
    return loop, frames


def _detections(spool: Spool, kind: Kind) -> list[Detection]:
    return [decode(Detection, row.payload) for row in spool.pending(limit=1000) if row.kind is kind]


def _holding(spool: Spool, count: int) -> Callable[[], bool]:
    return lambda: len(_detections(spool, Kind.DETECTION)) == count


def test_each_frame_becomes_a_numbered_detection_and_a_rejected_frame_costs_only_itself(
    facility: Facility, spool: Spool
) -> None:
    loco = extent(3.0, 9.0)
    estimator = TableEstimator("1.0.0-int8", {"T1-C1": [loco]}, rejects={"T1-C3"})
    loop, frames = _loop(facility, spool, estimator)
    loop.start()
    try:
        for second in range(3):
            for cid in ("T1-C1", "T1-C2", "T1-C3"):
                frames.put(cid, GREY, datetime(2026, 3, 2, 10, 0, second, tzinfo=UTC))
            expected = 2 * (second + 1)
            wait_until(_holding(spool, expected), 5, f"{expected} detections")
    finally:
        loop.stop()
    detections = _detections(spool, Kind.DETECTION)
    assert [d.seq for d in detections] == list(range(6))
    assert {d.camera_id for d in detections} == {"T1-C1", "T1-C2"}
    assert all(d.flow == "prod" and d.model.version == "1.0.0-int8" for d in detections)
    assert [d.extents for d in detections if d.camera_id == "T1-C1"] == [[loco]] * 3
    for row, d in zip(spool.pending(limit=1000), detections, strict=True):
        assert row.topic == str(
            Topic(TopicKind.DETECTION, facility.site, NODE, flow="prod", camera=d.camera_id)
        )


def test_a_shadow_flow_spools_its_own_numbered_detections_of_the_same_frames(
    facility: Facility, spool: Spool
) -> None:
    main = TableEstimator("1.0.0-int8", {}, rejects=set())
    dev = TableEstimator("1.1.0-fp32", {}, rejects=set())
    loop, frames = _loop(facility, spool, main, {"dev": dev})
    loop.start()
    try:
        frames.put("T1-C4", GREY, datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        wait_until(lambda: _detections(spool, Kind.SHADOW), 5, "the shadow detection")
        frames.put("T1-C4", GREY, datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC))
        wait_until(lambda: len(_detections(spool, Kind.SHADOW)) == 2, 5, "the second shadow detection")
    finally:
        loop.stop()
    prod, shadow = _detections(spool, Kind.DETECTION), _detections(spool, Kind.SHADOW)
    assert [(d.flow, d.seq, d.model.version) for d in prod] == [
        ("prod", 0, "1.0.0-int8"),
        ("prod", 1, "1.0.0-int8"),
    ]
    assert [(d.flow, d.seq, d.model.version) for d in shadow] == [
        ("dev", 0, "1.1.0-fp32"),
        ("dev", 1, "1.1.0-fp32"),
    ]
    assert [d.captured_at for d in shadow] == [d.captured_at for d in prod]
