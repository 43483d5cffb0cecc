"""What the calibration workbench asks the API for besides the fit, over real HTTP with a real broker
and SQLite: the mounting a fit implies, checked against the LPE's envelope in `depotwatch layout
check`'s words; the fit drawn over the camera's latest snapshot, and the strip the LPE would read from
it, both made by the shared code the CLI and the edge use; refused points draw nothing and say why."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from cloud.auth import Role, create_key
from cloud.calibration_pictures import OVERLAY_JPEG_QUALITY
from cloud.config import CalibrationConfig
from shared.calibration import RAIL_OFFSET_M
from shared.calibration_check import check_points
from shared.calibration_overlay import RAIL, draw_overlay
from shared.codec import encode
from shared.envelope import ENVELOPE_FILE, load_envelope, mounting_warnings
from shared.layout import CalibrationPoint, Facility, Interval
from shared.messages import Snapshot, SnapshotMeta
from shared.mqtt import MqttConnection
from shared.strip import StripGeometry
from shared.topics import Topic, TopicKind
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from tests import factories
from tests.cloud.servers import Server
from tests.conftest import REPO, DatabaseFactory
from tests.waiting import wait_until

CAMERA = "T2-C3"
SHIPPED_LPE = REPO / "ir_models" / "lpe" / "1.0.0"


def _points(facility: Facility) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json") for p in facility.cameras[CAMERA].calibration.points]


def _refused(facility: Facility) -> dict[str, tuple[list[dict[str, Any]], str, int | None]]:
    """Refused sets of points: each, a phrase of the loader's reason, and the point to re-survey."""
    points = _points(facility)
    left = [p for p in points if p["offset_m"] > 0]
    off = [dict(p) for p in points]
    off[4]["track_m"] += 1.0
    return {
        "on one line": (left + [{**p, "track_m": p["track_m"] + 0.5} for p in left], "lie on one line", None),
        "too few": (points[:3], "at least 4", None),
        "a mark a metre off": (off, "points disagree with one another", 4),
    }


@pytest.fixture
def narrow_lpe(tmp_path: Path) -> Path:
    """An LPE model folder whose envelope leaves out the example depot's 8 m high cameras."""
    folder = tmp_path / "lpe"
    folder.mkdir()
    envelope = yaml.safe_load((SHIPPED_LPE / ENVELOPE_FILE).read_text())
    envelope["height_m"] = {"low": 9.0, "high": 10.0}
    (folder / ENVELOPE_FILE).write_text(yaml.safe_dump(envelope))
    return folder


@pytest.fixture
def server(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, layout: Path, narrow_lpe: Path
) -> Iterator[Server]:
    s = Server(
        database_factory(),
        mqtt_url,
        facility,
        layout=layout,
        calibration=CalibrationConfig(lpe_model_dir=narrow_lpe),
    )
    yield s
    s.stop()


def _send(edge: MqttConnection, facility: Facility, snapshot: Snapshot) -> None:
    meta = snapshot.meta
    topic = Topic(TopicKind.SNAPSHOT, facility.site, meta.node_id, camera=meta.camera_id)
    assert edge.publish(str(topic), encode(snapshot)) is not None


def _simulated_snapshot(facility: Facility) -> Snapshot:
    """The camera's frame as its node sends it."""
    camera = SimCamera(facility, World(facility, Scenario(seed=3)), SimUrl(camera_id=CAMERA, realtime=False))
    image = camera.frame_at(3600.0).image
    assert image is not None
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    meta = SnapshotMeta(
        snapshot_id=uuid.uuid4(),
        node_id=facility.cameras[CAMERA].node,
        camera_id=CAMERA,
        captured_at=datetime.now(UTC),
        width=image.shape[1],
        height=image.shape[0],
        calibration_version=facility.cameras[CAMERA].calibration_version,
    )
    return Snapshot(meta=meta, jpeg=jpeg.tobytes())


def _picture(server: Server, path: str, key: str, points: list[dict[str, Any]]) -> tuple[int, Any]:
    status, body = server.call(path, key, "POST", {"points": points})
    if status != 200:
        return status, body
    assert isinstance(body, bytes)
    return status, cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


def test_the_fit_names_the_mounting_and_what_of_it_lies_outside_the_lpes_envelope(
    server: Server, facility: Facility, narrow_lpe: Path
) -> None:
    operator = create_key(server.service.engine, Role.OPERATOR)
    status, fit = server.call(
        f"/api/cameras/{CAMERA}/calibration/fit", operator, "POST", {"points": _points(facility)}
    )
    assert status == 200 and fit["accepted"], fit
    mounting = fit["mounting"]
    assert {k: mounting[k] for k in ("height_m", "lateral_m", "side", "hfov_deg", "roll_deg")} == {
        "height_m": 8.0,
        "lateral_m": -6.0,
        "side": "right",
        "hfov_deg": 60.0,
        "roll_deg": 0.0,
    }
    assert mounting["view_m"] == pytest.approx(fit["view"][1] - fit["view"][0], abs=0.01)
    envelope = load_envelope(narrow_lpe)
    assert envelope is not None
    # Word for word what `depotwatch layout check --lpe` says of the same camera.
    assert fit["mounting_warnings"] == mounting_warnings(facility, envelope, [CAMERA])
    assert fit["mounting_warnings"] == [
        f"camera {CAMERA}: mounted outside the LPE's envelope: height 8 m (measured 9–10 m)"
    ]
    status, refused = server.call(
        f"/api/cameras/{CAMERA}/calibration/fit", operator, "POST", {"points": _points(facility)[:3]}
    )
    assert status == 200 and refused["mounting"] is None and refused["mounting_warnings"] == []


def test_the_overlay_and_the_strip_are_made_from_the_latest_snapshot(
    server: Server, edge: MqttConnection, facility: Facility
) -> None:
    operator = create_key(server.service.engine, Role.OPERATOR)
    points = _points(facility)
    overlay, strip = (f"/api/cameras/{CAMERA}/calibration/{kind}" for kind in ("overlay", "strip"))
    for path in (overlay, strip):
        assert _picture(server, path, operator, points) == (
            404,
            {
                "detail": f"camera {CAMERA} has sent no snapshot yet; "
                f"POST /api/cameras/{CAMERA}/snapshot to ask its node for one"
            },
        )
    snapshot = _simulated_snapshot(facility)
    _send(edge, facility, snapshot)
    wait_until(
        lambda: server.call(f"/api/cameras/{CAMERA}/snapshot/meta", operator)[0] == 200, 10, "the snapshot"
    )
    frame = cv2.imdecode(np.frombuffer(snapshot.jpeg, np.uint8), cv2.IMREAD_COLOR)
    report = check_points([CalibrationPoint.model_validate(p) for p in points], 3.0, (1280, 720, 60.0))
    assert report.calibration is not None
    status, fit = server.call(f"/api/cameras/{CAMERA}/calibration/fit", operator, "POST", {"points": points})
    assert status == 200
    fitted = facility.cameras[CAMERA].model_copy(
        update={
            "calibration": report.calibration,
            "view": Interval(start_m=fit["view"][0], end_m=fit["view"][1]),
        }
    )

    status, drawn = _picture(server, overlay, operator, points)
    assert status == 200 and drawn.shape == frame.shape
    model = report.calibration.model
    expected = draw_overlay(frame, model, tuple(fit["view"]), report.residuals)
    _, encoded = cv2.imencode(".jpg", expected, [cv2.IMWRITE_JPEG_QUALITY, OVERLAY_JPEG_QUALITY])
    assert np.array_equal(drawn, cv2.imdecode(encoded, cv2.IMREAD_COLOR)), "the CLI's overlay, no other"
    u, v = np.round(model.to_image(np.array([[30.5, RAIL_OFFSET_M]]))[0]).astype(int)
    assert np.abs(drawn[v, u].astype(int) - RAIL).max() < 60, "the left rail in amber"
    assert np.abs(frame[v, u].astype(int) - RAIL).max() > 100, "not amber in the snapshot itself"

    status, seen = _picture(server, strip, operator, points)
    cells = StripGeometry.for_camera(CAMERA, fitted).rectify(frame)
    assert status == 200 and seen.shape == (256, 1024, 3)
    assert np.array_equal(seen, np.repeat(np.repeat(cells, 4, axis=0), 4, axis=1))

    # A snapshot that is not of the layout's resolution cannot be drawn on.
    small = factories.snapshot(node_id="edge-bay1", camera_id="T1-C2", captured_at=datetime.now(UTC))
    _send(edge, facility, small)
    wait_until(lambda: server.call("/api/cameras/T1-C2/snapshot/meta", operator)[0] == 200, 10, "it")
    for kind in ("overlay", "strip"):
        status, body = _picture(
            server,
            f"/api/cameras/T1-C2/calibration/{kind}",
            operator,
            [p.model_dump(mode="json") for p in facility.cameras["T1-C2"].calibration.points],
        )
        assert (status, body) == (
            409,
            {"detail": "camera T1-C2: its snapshot is 160x90, the layout says 1280x720"},
        )


def test_refused_points_are_drawn_nowhere_and_saved_nowhere_with_the_loaders_reasons(
    server: Server, edge: MqttConnection, facility: Facility, layout: Path
) -> None:
    admin = create_key(server.service.engine, Role.ADMIN)
    _send(edge, facility, _simulated_snapshot(facility))
    wait_until(lambda: server.call(f"/api/cameras/{CAMERA}/snapshot/meta", admin)[0] == 200, 10, "it")
    before = layout.read_text()
    base = f"/api/cameras/{CAMERA}/calibration"
    for name, (points, reason, outlier) in _refused(facility).items():
        status, fit = server.call(f"{base}/fit", admin, "POST", {"points": points})
        assert status == 200 and not fit["accepted"] and fit["outlier"] == outlier, name
        assert any(reason in p for p in fit["problems"]), (name, fit["problems"])
        for method, path in (("POST", f"{base}/overlay"), ("POST", f"{base}/strip"), ("PUT", base)):
            status, body = server.call(path, admin, method, {"points": points})
            assert status == 422 and body["detail"]["outlier"] == outlier, (name, path, body)
            assert body["detail"]["problems"] == fit["problems"], (name, path)
    assert layout.read_text() == before
