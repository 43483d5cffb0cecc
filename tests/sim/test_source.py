"""sim:// camera sources: URL parsing, pacing, and camera faults as configured."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shared.errors import SimulatorError
from shared.layout import Facility
from sim.scenario import FaultKind, FaultSpec, Scenario
from sim.source import SimCamera, SimUrl, parse_sim_url
from sim.world import World


def test_url_parameters_are_parsed_and_checked() -> None:
    url = parse_sim_url("sim://T1-C2?fps=5&speed=60&realtime=false")
    assert url == SimUrl(camera_id="T1-C2", fps=5, speed=60, realtime=False)
    assert parse_sim_url("sim://T1-C2") == SimUrl(camera_id="T1-C2")
    with pytest.raises(SimulatorError, match="fps"):
        parse_sim_url("sim://T1-C2?fps=0")
    with pytest.raises(SimulatorError, match="colour"):
        parse_sim_url("sim://T1-C2?colour=red")
    with pytest.raises(SimulatorError, match="not a sim://"):
        parse_sim_url("rtsp://T1-C2")


def test_unknown_camera_is_refused(facility: Facility) -> None:
    with pytest.raises(SimulatorError, match="no such camera"):
        SimCamera(facility, World(facility, Scenario(horizon_h=1)), SimUrl(camera_id="T9-C9"))


FAULTS = [
    FaultSpec(camera="T1-C2", kind=FaultKind.FROZEN, start_s=100, duration_s=60),
    FaultSpec(camera="T1-C2", kind=FaultKind.BLACK, start_s=300, duration_s=60),
    FaultSpec(camera="T1-C2", kind=FaultKind.DROPOUT, start_s=500, duration_s=60),
]


@pytest.fixture(scope="module")
def faulty(facility: Facility) -> SimCamera:
    world = World(facility, Scenario(seed=3, horizon_h=1, faults=FAULTS))
    return SimCamera(facility, world, SimUrl(camera_id="T1-C2", realtime=False, fps=1, speed=10))


def test_frozen_camera_repeats_the_frame_from_the_fault_start(faulty: SimCamera) -> None:
    first, later = faulty.frame_at(110), faulty.frame_at(150)
    assert first.fault is later.fault is FaultKind.FROZEN
    assert first.image is not None and later.image is not None
    assert np.array_equal(first.image, later.image)
    assert np.array_equal(later.image, faulty.renderer.render(100).image)
    live = faulty.frame_at(170)
    assert live.fault is None and live.image is not None
    assert not np.array_equal(live.image, faulty.renderer.render(100).image)


def test_black_camera_delivers_dark_frames(faulty: SimCamera) -> None:
    frame = faulty.frame_at(320)
    assert frame.fault is FaultKind.BLACK
    assert frame.image is not None and frame.image.mean() < 10
    assert faulty.frame_at(280).image.mean() > 40  # type: ignore[union-attr]


def test_dropout_fails_reads_until_the_stream_returns(facility: Facility) -> None:
    world = World(facility, Scenario(seed=3, horizon_h=1, faults=FAULTS))
    camera = SimCamera(facility, world, SimUrl(camera_id="T1-C2", realtime=False, fps=1, speed=10))
    results = [camera.read()[0] for _ in range(60)]  # t = 0, 10, …, 590 s
    assert results[:50] == [True] * 50
    assert results[50:56] == [False] * 6  # 500 … 550 s
    assert results[56:] == [True] * 4
    frame = camera.frame_at(510)
    assert frame.image is None and frame.fault is FaultKind.DROPOUT


def test_ground_truth_is_reported_even_while_the_camera_fails(faulty: SimCamera) -> None:
    for t in (110.0, 320.0, 510.0):
        assert faulty.frame_at(t).extents == faulty.frame_at(t + 0.001).extents


def test_realtime_source_follows_the_shared_epoch(facility: Facility) -> None:
    world = World(facility, Scenario(seed=3, horizon_h=1))
    epoch = time.time() - 100.0
    camera = SimCamera(facility, world, SimUrl(camera_id="T1-C1", fps=10, speed=2), epoch=epoch)
    first = camera.next_frame()
    second = camera.next_frame()
    # 100 s of wall time at speed 2 is simulation second ≈ 200, on the 0.1 s frame grid.
    assert 200 <= first.t <= 202
    assert second.t > first.t
    assert round(first.t / 0.2, 6).is_integer()
    camera.release()
    assert camera.read() == (False, None)
