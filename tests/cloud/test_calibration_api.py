"""Calibrating a camera over the API: a fit as the layout loader makes it (operators), and an
accepted fit saved as the camera's calibration and view through the validated layout replace
(admins); refused points save nothing and say why and which point to re-survey."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cloud.auth import Role, create_key
from shared.calibration import RAIL_OFFSET_M
from shared.codec import decode_message
from shared.layout import Facility, load_facility
from shared.messages import CommandRequest, SetCalibration
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests.brokers import RestartableBroker
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory
from tests.waiting import wait_until

CAMERA = "T2-C3"


@pytest.fixture
def calibrating(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, layout: Path
) -> Iterator[Server]:
    server = Server(database_factory(), mqtt_url, facility, layout=layout)
    yield server
    server.stop()


def _points(facility: Facility, moved: int | None = None, along_m: float = 1.0) -> dict[str, object]:
    points = [p.model_dump(mode="json") for p in facility.cameras[CAMERA].calibration.points]
    if moved is not None:
        points[moved]["track_m"] += along_m
    return {"points": points}


def test_operators_fit_points_and_see_the_verdict_residuals_and_view(
    calibrating: Server, facility: Facility
) -> None:
    engine = calibrating.service.engine
    operator, viewer = create_key(engine, Role.OPERATOR), create_key(engine, Role.VIEWER)
    path = f"/api/cameras/{CAMERA}/calibration/fit"
    assert calibrating.call(path, viewer, "POST", _points(facility))[0] == 403
    status, fit = calibrating.call(path, operator, "POST", _points(facility))
    assert status == 200, fit
    assert fit["accepted"] and fit["problems"] == [] and fit["outlier"] is None
    assert max(r["pixels"] for r in fit["residuals"]) < 0.5
    view = facility.cameras[CAMERA].view
    assert fit["view"] == pytest.approx([view.start_m, view.end_m], abs=0.2)
    assert len(fit["track_to_image"]) == 3

    status, fit = calibrating.call(path, operator, "POST", _points(facility, moved=4))
    assert status == 200 and not fit["accepted"]
    assert fit["outlier"] == 4 and fit["residuals"][4]["left_out_pixels"] > 20
    assert any("points disagree with one another" in p for p in fit["problems"])
    status, fit = calibrating.call(path, operator, "POST", {"points": _points(facility)["points"][:3]})
    assert status == 200 and not fit["accepted"] and any("at least 4" in p for p in fit["problems"])
    assert (
        calibrating.call("/api/cameras/T9-C1/calibration/fit", operator, "POST", _points(facility))[0] == 404
    )


def test_admins_save_an_accepted_fit_into_the_layout_and_refused_points_save_nothing(
    calibrating: Server, facility: Facility, layout: Path
) -> None:
    engine = calibrating.service.engine
    admin, operator = create_key(engine, Role.ADMIN), create_key(engine, Role.OPERATOR)
    path = f"/api/cameras/{CAMERA}/calibration"
    resurveyed = _points(facility)
    for point in resurveyed["points"]:  # type: ignore[attr-defined]
        point["image"][0] += 1.0  # a survey a pixel to the right
    assert calibrating.call(path, operator, "PUT", resurveyed)[0] == 403

    before = layout.read_text()
    status, body = calibrating.call(path, admin, "PUT", _points(facility, moved=2))
    assert status == 422 and body["detail"]["outlier"] == 2
    assert any("points disagree" in p for p in body["detail"]["problems"])
    assert layout.read_text() == before

    status, fit = calibrating.call(path, admin, "PUT", resurveyed)
    assert status == 200 and fit["accepted"], fit
    saved = load_facility(layout).cameras[CAMERA]
    assert [list(p.image) for p in saved.calibration.points] == [p["image"] for p in resurveyed["points"]]  # type: ignore[index]
    assert (saved.view.start_m, saved.view.end_m) == tuple(fit["view"])
    assert calibrating.service.facility.cameras[CAMERA].calibration.points == saved.calibration.points
    previous = load_facility(layout.with_name("facility.yaml.previous")).cameras[CAMERA]
    assert previous.calibration.points == facility.cameras[CAMERA].calibration.points


def _shifted(facility: Facility, pixels: float) -> dict[str, object]:
    """The camera's points surveyed again `pixels` to the right."""
    survey = _points(facility)
    for point in survey["points"]:  # type: ignore[attr-defined]
        point["image"][0] += pixels
    return survey


def test_a_saved_calibration_is_sent_to_the_cameras_node(
    calibrating: Server, facility: Facility, layout: Path, mqtt_url: str
) -> None:
    admin = create_key(calibrating.service.engine, Role.ADMIN)
    node = facility.cameras[CAMERA].node
    received: list[CommandRequest] = []

    def on_command(topic: str, payload: bytes) -> None:
        _, message = decode_message(topic, payload)
        assert isinstance(message, CommandRequest)
        received.append(message)

    listener = MqttConnection(BrokerConfig(url=mqtt_url), f"node-{uuid.uuid4().hex[:6]}")
    listener.subscribe(str(Topic(TopicKind.COMMAND, facility.site, node)), on_command)
    listener.start()
    try:
        assert listener.wait_connected(5) and listener.wait_subscribed(5)
        status, saved = calibrating.call(
            f"/api/cameras/{CAMERA}/calibration", admin, "PUT", _shifted(facility, 1.0)
        )
        assert status == 200, saved
        request = wait_until(
            lambda: next((r for r in received if str(r.command_id) == saved["command_id"]), None),
            10,
            "the command on the node's command topic",
        )
    finally:
        listener.stop()
    assert saved["node_id"] == node and saved["not_sent"] is None and saved["accepted"]
    command = request.command
    assert isinstance(command, SetCalibration) and command.camera_id == CAMERA
    filed = load_facility(layout).cameras[CAMERA]
    assert command.calibration.points == filed.calibration.points and command.view == filed.view
    assert request.issued_by == "api:admin"
    # What the node is sent maps every metre of the view, on both rails, within 3 px of the survey.
    metres = np.arange(np.ceil(filed.view.start_m), filed.view.end_m + 1e-9, 1.0)
    rails = np.array([(m, side * RAIL_OFFSET_M) for m in metres for side in (-1.0, 1.0)])
    surveyed = facility.cameras[CAMERA].calibration.model.to_image(rails) + np.array([1.0, 0.0])
    assert np.abs(command.calibration.model.to_image(rails) - surveyed).max() < 3.0


def test_a_calibration_saved_while_the_broker_is_away_is_saved_and_says_the_node_was_not_told(
    database_factory: DatabaseFactory, facility: Facility, layout: Path, tmp_path: Path
) -> None:
    broker = RestartableBroker(tmp_path)
    broker.start()
    server = Server(database_factory(), broker.url, facility, layout=layout)
    try:
        admin = create_key(server.service.engine, Role.ADMIN)
        broker.stop()
        wait_until(lambda: not server.service.link.connected.is_set(), 10, "the service to lose the broker")
        survey = _shifted(facility, 1.0)
        status, saved = server.call(f"/api/cameras/{CAMERA}/calibration", admin, "PUT", survey)
    finally:
        server.stop()
        broker.stop()
    assert status == 200, saved
    assert saved["command_id"] is None and "not reachable" in saved["not_sent"]
    filed = load_facility(layout).cameras[CAMERA]
    assert [list(p.image) for p in filed.calibration.points] == [p["image"] for p in survey["points"]]  # type: ignore[index]
