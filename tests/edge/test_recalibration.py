"""A new calibration reaches a running edge node as a SetCalibration command: written into its layout
file (the previous file kept) and used for the camera's next detections, without a restart; one the
layout loader refuses, for a camera of another node, or that cannot be written changes nothing and is
refused with the reason. A frame being estimated while the calibration changes is read with one
calibration, old or new, never a mix of one's view and the other's strip."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.aggregate import Sampled
from edge.config import ThumbnailConfig
from edge.lpe.openvino_lpe import OpenVinoLpe
from edge.node import EdgeNode
from edge.observability import EdgeMetrics
from edge.recalibration import recalibrated, write_calibration
from edge.shadow import ShadowRunner
from edge.spool import Kind, Spool
from edge.thumbnails import ThumbnailMaker
from shared.calibration import RAIL_OFFSET_M
from shared.codec import encode
from shared.frames import Frame
from shared.layout import Calibration, CalibrationPoint, Camera, Facility, Interval, load_facility
from shared.messages import (
    CommandAck,
    CommandRequest,
    Detection,
    LocoExtent,
    ModelRef,
    NodeLifecycle,
    SetCalibration,
    TrackSpan,
)
from shared.strip import StripGeometry
from sim.edge_source import with_sim
from tests.collector import Collector
from tests.edge.nodes import facility_data, node_config, send_command
from tests.edge.test_inference import GREY, _detections, _loop
from tests.factories import extent
from tests.waiting import wait_until

CAMERA = "T1-C1"
# The example depot's T1-C1 sees 1.4–15.3 m, and the simulator's seed-0 day has a locomotive standing
# there from 3.55 m on past the end of the view: re-surveyed for a shorter view, its start stays put.
NEW_VIEW = Interval(start_m=2.0, end_m=12.0)
LOCO_START_M = 3.55


def resurveyed(camera: Camera, marks: Sequence[float]) -> Calibration:
    """Marks surveyed again on both rails of the camera's track at `marks` (metres), at the pixels its
    calibration (the simulator's true projection) puts them, to 0.1 px, as a survey writes them."""
    track = np.array([(m, side * RAIL_OFFSET_M) for m in marks for side in (-1.0, 1.0)])
    pixels = camera.calibration.model.to_image(track)
    return Calibration(
        points=[
            CalibrationPoint(image=(round(float(u), 1), round(float(v), 1)), track_m=float(m), offset_m=o)
            for (u, v), (m, o) in zip(pixels, track, strict=True)
        ]
    )


def _request(command: SetCalibration) -> CommandRequest:
    return CommandRequest(
        command_id=uuid.uuid4(), issued_at=datetime.now(UTC), issued_by="test:admin", command=command
    )


@pytest.fixture
def layout(tmp_path: Path, site: str) -> Path:
    """The node's own layout file: the example depot under the test's site, simulated cameras."""
    path = tmp_path / "facility.yaml"
    path.write_text(yaml.safe_dump(facility_data(site), sort_keys=False))
    return path


@pytest.fixture
def node(tmp_path: Path, mqtt_url: str, layout: Path) -> Iterator[EdgeNode]:
    """A started edge node of bay 1 on its layout file, with the shipped LPE, connected."""
    started = EdgeNode.open(node_config(tmp_path, mqtt_url, layout=layout), load_facility(layout), with_sim())
    started.start()
    try:
        assert started.link.wait_connected(10) and started.link.wait_subscribed(5)
        yield started
    finally:
        started.stop()


def _ack(collector: Collector, request: CommandRequest) -> CommandAck:
    ack: CommandAck = wait_until(
        lambda: next((a for a in collector.of(CommandAck) if a.command_id == request.command_id), None),
        10,
        "the command's ack",
    )
    return ack


def _seen_after(collector: Collector, at: datetime, count: int) -> list[Detection]:
    """The camera's detections of frames captured after `at`, once there are `count` of them."""
    detections: list[Detection] = wait_until(
        lambda: (
            len(d := [x for x in collector.of(Detection) if x.camera_id == CAMERA and x.captured_at > at])
            >= count
            and d
        ),
        20,
        f"{count} detections of {CAMERA} after {at:%H:%M:%S.%f}",
    )
    return detections


def test_a_new_calibration_is_written_and_used_for_the_next_detections_without_a_restart(
    node: EdgeNode, layout: Path, site: str, mqtt_url: str, collector: Collector
) -> None:
    original = node.cameras[CAMERA]
    assert isinstance(node.estimator, OpenVinoLpe)
    geometry_before = node.estimator.geometries[CAMERA]
    _seen_after(collector, datetime.min.replace(tzinfo=UTC), 2)
    births = len(collector.of(NodeLifecycle))
    request = _request(
        SetCalibration(camera_id=CAMERA, calibration=resurveyed(original, (3.0, 7.0, 11.0)), view=NEW_VIEW)
    )
    send_command(site, encode(request), mqtt_url)
    ack = _ack(collector, request)
    assert ack.accepted, ack.reason
    after = _seen_after(collector, ack.at, 3)

    saved = load_facility(layout).cameras[CAMERA]
    assert saved.view == NEW_VIEW and saved.calibration.points == request.command.calibration.points  # type: ignore[union-attr]
    previous = load_facility(layout.with_name("facility.yaml.previous")).cameras[CAMERA]
    assert previous.calibration_version == original.calibration_version
    # The running units switched: the camera map, and the LPE's strip, built from the file's camera.
    assert (
        node.cameras[CAMERA].calibration_version == saved.calibration_version != original.calibration_version
    )
    geometry = node.estimator.geometries[CAMERA]
    assert (geometry.view_start_m, geometry.view_end_m) == (2.0, 12.0)
    assert np.array_equal(geometry.map_x, StripGeometry.for_camera(CAMERA, saved).map_x)
    assert not np.array_equal(geometry.map_x, geometry_before.map_x)
    for detection in after:
        assert detection.view == TrackSpan(start_m=2.0, end_m=12.0)
        # The same standing locomotive, read through the new strip: its start where it was, its end
        # now beyond the shorter view.
        [loco] = detection.extents
        assert loco.start_m == pytest.approx(LOCO_START_M, abs=0.2) and not loco.start_beyond_view
        assert loco.end_m == 12.0 and loco.end_beyond_view
    assert len(collector.of(NodeLifecycle)) == births, "the node was born again: it restarted"


def test_a_calibration_refused_or_not_written_changes_nothing(
    node: EdgeNode, layout: Path, site: str, mqtt_url: str, collector: Collector
) -> None:
    original = node.cameras[CAMERA]
    assert isinstance(node.estimator, OpenVinoLpe)
    geometry_before = node.estimator.geometries[CAMERA]
    before = layout.read_bytes()
    # T2-C1 is a camera of bay 2's node; marks at 20 m lie right of T1-C1's 1280-pixel-wide image.
    other_node = _request(
        SetCalibration(camera_id="T2-C1", calibration=resurveyed(original, (3.0, 7.0, 11.0)), view=NEW_VIEW)
    )
    outside = _request(
        SetCalibration(camera_id=CAMERA, calibration=resurveyed(original, (3.0, 8.0, 20.0)), view=NEW_VIEW)
    )
    unwritable = _request(
        SetCalibration(camera_id=CAMERA, calibration=resurveyed(original, (3.0, 7.0, 11.0)), view=NEW_VIEW)
    )
    for request in (other_node, outside):
        send_command(site, encode(request), mqtt_url)
    acks = [_ack(collector, other_node), _ack(collector, outside)]
    # A directory where the atomic write puts its temporary file: the write fails, nothing else does.
    blocker = layout.with_name(f".{layout.name}.tmp")
    blocker.mkdir()
    send_command(site, encode(unwritable), mqtt_url)
    acks.append(_ack(collector, unwritable))
    blocker.rmdir()

    assert [a.accepted for a in acks] == [False, False, False]
    assert "camera 'T2-C1' is not served by node edge-bay1" in acks[0].reason
    assert (
        "calibration.points.4.image" in acks[1].reason and "lies outside the 1280x720 image" in acks[1].reason
    )
    assert "cannot write the layout file" in acks[2].reason and "Is a directory" in acks[2].reason
    assert layout.read_bytes() == before
    assert not layout.with_name("facility.yaml.previous").exists()
    assert node.cameras[CAMERA] is original
    assert node.estimator.geometries[CAMERA] is geometry_before
    after = _seen_after(collector, acks[-1].at, 2)
    assert all(d.view == TrackSpan(start_m=1.4, end_m=15.3) for d in after)


def test_a_layout_file_that_holds_the_calibration_already_is_left_alone(
    layout: Path, facility: Facility
) -> None:
    """The cloud and a node may share one file (the demo): the cloud's save kept the true previous
    version, which the node's must not overwrite with the new one."""
    original = facility.cameras[CAMERA]
    command = SetCalibration(
        camera_id=CAMERA, calibration=resurveyed(original, (3.0, 7.0, 11.0)), view=NEW_VIEW
    )
    assert write_calibration(layout, command)
    previous = layout.with_name("facility.yaml.previous").read_bytes()
    saved = layout.read_bytes()
    assert not write_calibration(layout, command)
    assert layout.read_bytes() == saved
    assert layout.with_name("facility.yaml.previous").read_bytes() == previous


class GatedEstimator:
    """Finds one locomotive over exactly the view it reads a camera with; holds its first batch at a
    gate until the test lets it go."""

    def __init__(self, cameras: dict[str, Camera]) -> None:
        self.views = {cid: cam.view for cid, cam in cameras.items()}
        self.entered, self.gate = threading.Event(), threading.Event()

    @property
    def model(self) -> ModelRef:
        return ModelRef(name="lpe", version="gated")

    def estimate(self, frames: Sequence[tuple[str, Frame]]) -> list[list[LocoExtent]]:
        views = [self.views[cid] for cid, _ in frames]
        self.entered.set()
        self.gate.wait(10)
        return [[extent(view.start_m, view.end_m)] for view in views]

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        self.views[camera_id] = camera.view


def test_a_frame_being_estimated_during_a_recalibration_is_read_with_one_calibration(
    facility: Facility, tmp_path: Path
) -> None:
    original = facility.cameras[CAMERA]
    command = SetCalibration(
        camera_id=CAMERA, calibration=resurveyed(original, (3.0, 7.0, 11.0)), view=NEW_VIEW
    )
    camera = recalibrated(facility, command).cameras[CAMERA]
    estimator = GatedEstimator(facility.cameras_of_node("edge-bay1"))
    shadow = GatedEstimator(facility.cameras_of_node("edge-bay1"))
    shadow.gate.set()  # a shadow flow that never waits
    spool = Spool(tmp_path / "spool.sqlite", 10_000_000)
    loop, frames = _loop(facility, spool, estimator, {"dev": shadow})
    loop.start()
    try:
        frames.put(CAMERA, GREY, datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC))
        assert estimator.entered.wait(5)
        switching = threading.Thread(target=loop.recalibrate, args=(CAMERA, camera))
        switching.start()
        # The switch waits for the batch in progress: it must still be waiting while the batch is held
        # (a wrong implementation finishes at once, well within this).
        switching.join(0.5)
        assert switching.is_alive(), "the calibration changed under a frame being estimated"
        estimator.gate.set()
        switching.join(5)
        # The shadow takes the newest batch and skips one still waiting: on a busy machine the second
        # frame's would replace the first's if it came before the shadow started on that one.
        wait_until(lambda: len(_detections(spool, Kind.SHADOW)) == 1, 15, "the first shadow detection")
        frames.put(CAMERA, GREY, datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC))
        wait_until(lambda: len(_detections(spool, Kind.DETECTION)) == 2, 15, "two detections")
        wait_until(lambda: len(_detections(spool, Kind.SHADOW)) == 2, 15, "two shadow detections")
    finally:
        loop.stop()
        main_rows, shadow_rows = _detections(spool, Kind.DETECTION), _detections(spool, Kind.SHADOW)
        spool.close()
    held, next_one = main_rows
    old = TrackSpan(start_m=original.view.start_m, end_m=original.view.end_m)
    assert held.view == old and (held.extents[0].start_m, held.extents[0].end_m) == (old.start_m, old.end_m)
    assert next_one.view == TrackSpan(start_m=2.0, end_m=12.0)
    assert (next_one.extents[0].start_m, next_one.extents[0].end_m) == (2.0, 12.0)
    assert loop.cameras[CAMERA] is camera
    # The shadow flow switched too, each of its detections read with one calibration.
    for detection in shadow_rows:
        assert (detection.view.start_m, detection.view.end_m) == (
            detection.extents[0].start_m,
            detection.extents[0].end_m,
        )
    assert shadow_rows[-1].view == TrackSpan(start_m=2.0, end_m=12.0)


def test_thumbnails_are_cropped_with_the_new_calibration(facility: Facility) -> None:
    """Recalibrated for a camera turned a little (every mark 40 px further right), the crop of the same
    extent is the one a maker built with that calibration makes."""
    cameras = facility.cameras_of_node("edge-bay1")
    turned = [
        p.model_copy(update={"image": (p.image[0] + 40, p.image[1])})
        for p in cameras[CAMERA].calibration.points
    ]
    moved = cameras[CAMERA].model_copy(update={"calibration": Calibration(points=turned)})
    config = ThumbnailConfig()
    maker, reference = ThumbnailMaker(cameras, config), ThumbnailMaker({CAMERA: moved}, config)
    loco = extent(5.0, 12.0)

    def bbox(of: ThumbnailMaker) -> tuple[int, int, int, int]:
        thumb = of.make(
            node_id="edge-bay1",
            camera_id=CAMERA,
            track_id="T1",
            flow="prod",
            observation_id=uuid.uuid4(),
            captured_at=datetime.now(UTC),
            index=0,
            extent=loco,
            frame=GREY,
        )
        assert thumb is not None
        return thumb.meta.bbox

    before = bbox(maker)
    maker.recalibrate(CAMERA, moved)
    assert bbox(maker) == bbox(reference) != before


def test_a_shadow_flow_is_paused_only_between_its_batches(facility: Facility) -> None:
    """The shadow's half of the switch: `paused()` waits for the batch it is estimating to be emitted."""
    estimator = GatedEstimator(facility.cameras_of_node("edge-bay1"))
    emitted: list[Sampled] = []
    runner = ShadowRunner("dev", estimator, lambda s, _extents: emitted.append(s), EdgeMetrics())
    runner.start()
    try:
        runner.offer([Sampled(CAMERA, GREY, datetime.now(UTC))])
        assert estimator.entered.wait(5)
        paused = threading.Event()

        def pause() -> None:
            with runner.paused():
                paused.set()

        pausing = threading.Thread(target=pause)
        pausing.start()
        # As above: a pause that does not wait for the batch is there at once, well within this.
        assert not paused.wait(0.5), "the shadow paused in the middle of a batch"
        estimator.gate.set()
        pausing.join(5)
        assert paused.is_set() and len(emitted) == 1
    finally:
        runner.stop()
