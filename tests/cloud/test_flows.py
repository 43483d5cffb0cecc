"""One estimator per flow in the cloud: two flows fed different detections keep separate states,
events and locomotives, each asked for by `?flow=`; a flow no estimator runs is stored, not fused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, func, select

from cloud.auth import Role, create_key
from cloud.config import FlowConfig
from cloud.db.models import ObservationRow
from cloud.fse import FseSettings
from shared.codec import encode
from shared.layout import Facility
from shared.messages import LocoExtent, ModelRef, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.seen import seen_stretches
from shared.topics import Topic, TopicKind
from tests import factories
from tests.browser import browser_page, needs_chromium
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory
from tests.waiting import wait_until

FLOWS = ("prod", "dev")
BEYOND_START = {"start_beyond_view": True, "end_beyond_view": False, "confidence": 0.9}


@pytest.fixture
def server(database_factory: DatabaseFactory, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database_factory(), mqtt_url, facility, flows={"prod": FlowConfig(), "dev": FlowConfig()})
    yield s
    s.stop()


def _publish(mqtt_url: str, facility: Facility, flow: str, end_m: float, version: str) -> None:
    """One locomotive in T1-C2's view, ending at `end_m`, as the flow's model saw it."""
    link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    view = facility.cameras["T1-C2"].view
    now = datetime.now(UTC)
    for k in range(3):
        d = factories.detection(
            camera_id="T1-C2",
            flow=flow,
            model=ModelRef(name="lpe", version=version),
            captured_at=now + timedelta(milliseconds=200 * k),
            seq=k,
            view=TrackSpan(start_m=view.start_m, end_m=view.end_m),
            extents=[LocoExtent(start_m=view.start_m, end_m=end_m, **BEYOND_START)],  # type: ignore[arg-type]
        )
        topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", flow=flow, camera="T1-C2")
        assert link.publish(str(topic), encode(d)) is not None
    link.stop()


def _locos(server: Server, key: str, flow: str) -> list[dict[str, object]]:
    """T1's locomotives in the flow's state now."""
    return server.call(f"/api/state?flow={flow}", key)[1]["tracks"][0]["locos"]  # type: ignore[no-any-return]


def test_two_flows_keep_separate_comparable_states(server: Server, mqtt_url: str, facility: Facility) -> None:
    viewer = create_key(server.service.engine, Role.VIEWER)
    _publish(mqtt_url, facility, "prod", 20.0, "1.0.0-int8")
    _publish(mqtt_url, facility, "dev", 24.0, "1.0.0-fp32")

    def locos(flow: str) -> list[dict[str, object]]:
        return _locos(server, viewer, flow)

    prod = wait_until(lambda: locos("prod"), 10, "the prod locomotive")
    dev = wait_until(lambda: locos("dev"), 10, "the dev locomotive")
    assert prod[0]["end_m"] == pytest.approx(20.0, abs=0.11) and dev[0]["end_m"] == pytest.approx(
        24.0, abs=0.11
    )
    assert prod[0]["loco_id"] != dev[0]["loco_id"]

    wait_until(lambda: server.call("/api/events?flow=dev&kind=arrived", viewer)[1]["total"], 5, "dev's event")
    prod_events = server.call("/api/events?flow=prod&kind=arrived", viewer)[1]["items"]
    dev_events = server.call("/api/events?flow=dev&kind=arrived", viewer)[1]["items"]
    assert [e["loco_id"] for e in prod_events] == [prod[0]["loco_id"]]
    assert [e["loco_id"] for e in dev_events] == [dev[0]["loco_id"]]
    wait_until(lambda: server.call("/api/locomotives?flow=dev", viewer)[1], 5, "dev's stored locomotive")
    [stored] = server.call("/api/locomotives?flow=dev", viewer)[1]
    assert stored["loco_id"] == dev[0]["loco_id"]

    # Each flow's detections are kept, though both flows of the node number them from the same seq.
    with Session(server.service.engine) as session:
        flows = session.exec(select(ObservationRow.flow, func.count()).group_by(ObservationRow.flow)).all()
    assert dict(flows) == {"prod": 3, "dev": 3}

    status, error = server.call("/api/state?flow=qa", viewer)
    assert status == 404 and "flows: dev, prod" in error["detail"]

    # A recognition counts in both flows, for the locomotive it shows in each.
    link = MqttConnection(BrokerConfig(url=mqtt_url), f"recognition-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    for _ in range(2):
        recognition = factories.recognition(span=TrackSpan(start_m=14.0, end_m=19.0))
        topic = Topic(TopicKind.RECOGNITION, facility.site, "edge-bay1", flow="prod", camera="T1-C2")
        assert link.publish(str(topic), encode(recognition)) is not None
    link.stop()
    for flow in ("prod", "dev"):
        wait_until(lambda f=flow: locos(f)[0].get("number") == "TE33A-2251", 5, f"{flow}'s number")

    listed = server.call("/api/flows", viewer)[1]
    assert [(f["flow"], f["clock"], f["locomotives"]) for f in listed] == [
        ("dev", "wall", 1),
        ("prod", "wall", 1),
    ]
    first_seen = [
        server.call(f"/api/locomotives?flow={f}", viewer)[1][0]["first_seen"] for f in ("prod", "dev")
    ]
    since = max(datetime.fromisoformat(t) for t in first_seen)
    query = (
        f"a=prod&b=dev&since={since.isoformat()}&until={(since + timedelta(seconds=2)).isoformat()}&step_s=1"
    )
    status, comparison = server.call(f"/api/flows/compare?{query.replace('+', '%2B')}", viewer)
    assert status == 200 and comparison["instants"] == comparison["matched"] == 3
    assert comparison["end_error_median_m"] == pytest.approx(2.0, abs=0.15)  # ends 0 and 4 m apart
    assert comparison["only_a"] == comparison["only_b"] == comparison["id_switches"] == 0
    assert comparison["numbers_compared"] == comparison["matched"] and comparison["number_differences"] == 0
    # Only what T1-C2 vouches for (its seen stretch, about 14.2-25.0 m) is known to both; they
    # disagree on the 4 m between the ends.
    seen_lo, seen_hi = seen_stretches(facility, "T1")["T1-C2"]
    assert comparison["occupancy_agreement"] == pytest.approx(1 - 4.0 / (seen_hi - seen_lo), abs=0.02)
    assert server.call(f"/api/flows/compare?{query.replace('+', '%2B')}&step_s=0.0001", viewer)[0] == 422
    assert (
        server.call(
            "/api/flows/compare?a=prod&b=qa&since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z", viewer
        )[0]
        == 404
    )


def test_a_flow_without_an_estimator_is_stored_not_fused(
    server: Server, mqtt_url: str, facility: Facility
) -> None:
    _publish(mqtt_url, facility, "qa", 22.0, "2.0.0-int8")
    ingest = server.service.ingest

    def stored() -> int:
        with Session(server.service.engine) as session:
            return int(session.exec(select(func.count()).where(ObservationRow.flow == "qa")).one())

    wait_until(lambda: stored() == 3, 10, "the qa detections stored")
    assert ingest.counts.unfused == 3
    assert all(not track.locos for track in server.service.fse.state())


def test_each_flow_runs_its_own_estimator_settings(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility
) -> None:
    """The same detections, replayed into two data-clock flows whose estimators keep a camera's view
    for 25 s and 12 s: 19 s after T1-C2's last report only the second has its view unknown."""
    flows = {
        "prod": FlowConfig(),
        "long": FlowConfig(clock="data"),
        "short": FlowConfig(clock="data", fse=FseSettings(max_age_s=12)),
    }
    server = Server(database_factory(), mqtt_url, facility, flows=flows)
    viewer = create_key(server.service.engine, Role.VIEWER)
    link = MqttConnection(BrokerConfig(url=mqtt_url), f"replay-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    reports = [("T1-C2", 0.0), ("T1-C2", 1.0), ("T1-C2", 2.0), ("T1-C1", 20.0), ("T1-C1", 21.0)]
    try:
        for flow in ("long", "short"):
            for seq, (camera_id, after_s) in enumerate(reports):
                view = facility.cameras[camera_id].view
                loco = LocoExtent(start_m=view.start_m, end_m=20.0, **BEYOND_START)  # type: ignore[arg-type]
                extents = [loco] if camera_id == "T1-C2" else []
                d = factories.detection(
                    camera_id=camera_id,
                    flow=flow,
                    seq=seq,
                    captured_at=t0 + timedelta(seconds=after_s),
                    view=TrackSpan(start_m=view.start_m, end_m=view.end_m),
                    extents=extents,
                )
                topic = Topic(TopicKind.DETECTION, facility.site, "edge-bay1", flow=flow, camera=camera_id)
                assert link.publish(str(topic), encode(d)) is not None

        c2_end = seen_stretches(facility, "T1")["T1-C2"][1]  # what it vouches for ends there

        def c2_unknown(flow: str) -> bool:
            """Whether the stretch T1-C2 alone saw free, past the locomotive, is unknown."""
            track = server.call(f"/api/state?flow={flow}", viewer)[1]["tracks"][0]
            return any(lo <= 20.0 and c2_end - 0.1 <= hi for lo, hi in track["unknown"])

        wait_until(lambda: _stored(server) == 2 * len(reports), 10, "every detection stored")
        wait_until(lambda: c2_unknown("short"), 5, "T1-C2's view unknown in short")
        assert not c2_unknown("long")
        unseen = {
            flow: [
                e["camera_id"]
                for e in server.call(f"/api/events?flow={flow}&kind=camera_unseen", viewer)[1]["items"]
            ]
            for flow in ("long", "short")
        }
        listed = {f["flow"]: f["fse"]["max_age_s"] for f in server.call("/api/flows", viewer)[1]}
    finally:
        link.stop()
        server.stop()
    assert "T1-C2" in unseen["short"] and "T1-C2" not in unseen["long"]
    assert listed == {"prod": 25.0, "long": 25.0, "short": 12.0}


def _stored(server: Server) -> int:
    with Session(server.service.engine) as session:
        return int(session.exec(select(func.count()).select_from(ObservationRow)).one())


@needs_chromium
def test_the_map_shows_the_flow_picked(server: Server, mqtt_url: str, facility: Facility) -> None:
    viewer = create_key(server.service.engine, Role.VIEWER)
    _publish(mqtt_url, facility, "prod", 20.0, "1.0.0-int8")
    _publish(mqtt_url, facility, "dev", 24.0, "1.0.0-fp32")
    for flow in FLOWS:
        wait_until(lambda f=flow: _locos(server, viewer, f), 10, f"{flow}'s locomotive")

    with browser_page() as page:

        def drawn_end_near(metres: float) -> bool:
            ends = [float(g.get_attribute("data-end") or 0) for g in page.locator("g.loco").all()]
            return len(ends) == 1 and abs(ends[0] - metres) < 0.15

        page.goto(f"http://127.0.0.1:{server.port}/?flow=dev#key={viewer}")
        wait_until(lambda: drawn_end_near(24.0), 20, "dev's locomotive on the map", interval=0.2)
        assert page.locator("#flow").input_value() == "dev"
        assert "dev" in (page.locator("#title").text_content() or "")
        assert page.url.endswith("/?flow=dev")  # the key left the address bar, the flow stayed

        page.select_option("#flow", "prod")
        wait_until(lambda: drawn_end_near(20.0), 20, "prod's locomotive on the map", interval=0.2)
        assert "flow=" not in page.url
