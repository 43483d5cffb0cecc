"""Asking for fresh thumbnails of locomotives not yet identified: when, of which cameras, how often."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from cloud.config import RecognitionConfig
from cloud.fse import Loco
from cloud.identities import Identity
from cloud.thumbnail_asks import Ask, ThumbnailAsks
from shared.layout import Facility
from shared.messages import CommandRequest, RequestThumbnail
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.cloud.servers import Server, publish_locomotive
from tests.conftest import DatabaseFactory
from tests.waiting import wait_until

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _loco(loco_id: str, start_m: float, end_m: float, track: str = "T1") -> Loco:
    return factories.loco(loco_id, track, start_m, end_m).model_copy(
        update={"first_seen": T0, "last_seen": T0, "still_since": T0, "confidence": 1.0, "length_m": None}
    )


def test_an_unnamed_locomotive_is_asked_for_after_the_first_wait_then_ever_less_often(
    facility: Facility,
) -> None:
    asks = ThumbnailAsks(facility, first_s=30, max_s=100)
    locos = [_loco("L1", 10.0, 30.0)]
    nobody = {}.get
    times = [t for t in range(0, 400) if asks.due(locos, nobody, float(t))]
    assert times == [30, 90, 190, 290, 390], "30 s, then 60, then 100 (the ceiling) between asks"


def test_every_camera_that_sees_part_of_it_is_asked_for_its_part(facility: Facility) -> None:
    asks = ThumbnailAsks(facility, first_s=1, max_s=10)
    loco = _loco("L1", 10.0, 30.0)
    asks.due([loco], {}.get, 0.0)
    sent = asks.due([loco], {}.get, 1.0)
    cameras = facility.cameras_on_track("T1")
    expected = {
        cid for cid, cam in cameras.items() if cam.view.start_m < loco.end_m and loco.start_m < cam.view.end_m
    }
    assert {a.command.camera_id for a in sent} == expected and len(expected) >= 2
    for ask in sent:
        view = cameras[ask.command.camera_id].view
        assert ask.node_id == cameras[ask.command.camera_id].node
        assert ask.command.span.start_m == max(view.start_m, loco.start_m)
        assert ask.command.span.end_m == min(view.end_m, loco.end_m)


def test_a_locomotive_identified_or_gone_is_no_longer_asked_for(facility: Facility) -> None:
    asks = ThumbnailAsks(facility, first_s=5, max_s=5)
    named, half, gone = _loco("L1", 10.0, 30.0), _loco("L2", 40.0, 48.0), _loco("L3", 5.0, 9.0, "T2")
    identities = {
        "L1": Identity(series="TEM2", plate="TEM2-2698"),
        "L2": Identity(series="TEM2", plate=None),
    }
    asks.due([named, half, gone], identities.get, 0.0)
    first = asks.due([named, half, gone], identities.get, 5.0)
    asked = {(a.command.camera_id[:2], a.command.span.start_m >= 40.0) for a in first}
    assert asked == {("T1", True), ("T2", False)}, "the named locomotive is not asked for, the others are"
    again = asks.due([named, half], identities.get, 10.0)
    assert again and all(a.command.span.start_m >= 40.0 for a in again), "only the half-named one is left"
    settled = {**identities, "L2": replace(identities["L2"], plate="TEM2-0001")}
    assert asks.due([named, half], settled.get, 100.0) == []


def test_the_cloud_asks_the_node_for_a_thumbnail_of_a_locomotive_it_cannot_name(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both cameras that see the unnamed locomotive are asked, and asked again after twice the first
    wait: the rounds' instants are the service's own clock readings, so a loaded machine delaying the
    commands on their way cannot make the wait look shorter (nor longer)."""
    received: list[CommandRequest] = []
    node = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    node.subscribe(
        str(Topic(TopicKind.COMMAND, facility.site, "edge-bay1")),
        lambda _t, p: received.append(CommandRequest.model_validate_json(p)),
    )
    node.start()
    assert node.wait_connected(5) and node.wait_subscribed(5)
    asks = RecognitionConfig(ask_unsettled_after_s=1.0, ask_unsettled_max_s=60)
    server = Server(database_factory(), mqtt_url, facility, recognition=asks)
    rounds: list[float] = []  # the monotonic instant of each round of asks
    due = server.service.thumbnail_asks.due

    def recorded(*args: Any) -> list[Ask]:
        out = due(*args)
        if out:
            rounds.append(args[-1])
        return out

    monkeypatch.setattr(server.service.thumbnail_asks, "due", recorded)
    try:
        publish_locomotive(mqtt_url, facility)
        wait_until(lambda: len(received) >= 4, 15, "two rounds of asks, both cameras each")
    finally:
        server.stop()
        node.stop()
    assert rounds[1] - rounds[0] >= 2 * asks.ask_unsettled_after_s - 1e-6, "the wait doubles"
    for asked in (received[:2], received[2:4]):
        commands = {r.command.camera_id: r.command for r in asked if isinstance(r.command, RequestThumbnail)}
        assert set(commands) == {"T1-C2", "T1-C3"}
        assert all(r.issued_by == "cloud:recognition" for r in asked)
        assert commands["T1-C2"].span.end_m == facility.cameras["T1-C2"].view.end_m
        assert commands["T1-C3"].span.start_m == facility.cameras["T1-C3"].view.start_m
