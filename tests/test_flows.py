"""Recording and replay end to end: an edge node's live prod flow is estimated by the cloud while a
recorder writes it to a file; the file replayed at top speed into a data-clock flow gives the same
locomotive events, at the same update instants, and the same positions as the live run did.

The live run lasts 50 s by default (a shunt on T1); `--live-s 3600 --timeout 5400` records an hour. A
replay at top speed outruns the cloud, so the broker must queue without limit, as the shipped
Mosquitto config does (Mosquitto's default keeps 1000 messages per client and drops the rest)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from cloud.config import FlowConfig
from cloud.db.models import EventRow, ObservationRow, PositionRow
from depotwatch.demo import first_move_s
from depotwatch.recording import Recorder, read_header, read_recording, replay
from edge.config import CameraSettings, CaptureConfig, EdgeConfig, MetricsConfig, SimConfig, SpoolConfig
from edge.node import EdgeNode
from shared.layout import parse_facility
from shared.mqtt import BrokerConfig
from shared.topics import TopicKind
from sim.edge_source import with_sim
from sim.scenario import Scenario
from tests.cloud.servers import Server
from tests.conftest import EXAMPLE_LAYOUT, DatabaseFactory
from tests.edge.nodes import facility_data
from tests.waiting import wait_until

log = logging.getLogger(__name__)
LOCO_EVENTS = ("arrived", "departed", "moved", "station_occupied", "station_freed")


def _count(server: Server, flow: str) -> int:
    with Session(server.service.engine) as session:
        return int(session.exec(select(func.count()).where(ObservationRow.flow == flow)).one())


def _events(server: Server, flow: str, until: datetime) -> list[EventRow]:
    with Session(server.service.engine) as session:
        query = (
            select(EventRow)
            .where(EventRow.flow == flow, col(EventRow.kind).in_(LOCO_EVENTS), EventRow.at <= until)
            .order_by(col(EventRow.at), col(EventRow.id))
        )
        return list(session.exec(query).all())


def _what(event: EventRow) -> tuple[str, str, str | None]:
    return event.kind, event.track_id, event.station


def _last_positions(server: Server, flow: str) -> dict[str, tuple[float, float]]:
    with Session(server.service.engine) as session:
        rows = session.exec(select(PositionRow).where(PositionRow.flow == flow).order_by(col(PositionRow.at)))
        return {row.loco_id: (row.start_m, row.end_m) for row in rows}


@pytest.mark.slow
def test_a_recording_replayed_at_top_speed_gives_the_live_results(
    tmp_path: Path, database_factory: DatabaseFactory, mqtt_url: str, request: pytest.FixtureRequest
) -> None:
    live_s = float(request.config.getoption("--live-s"))  # from 12 s before the first shunt on T1
    assert live_s >= 50, "the first shunt settles about 40 s into the run"
    # Waits for the database to take every detection in, by what an hour takes on this machine.
    storing_s = max(30, 20 + live_s / 30)
    facility = parse_facility(facility_data(f"test-{uuid.uuid4().hex[:8]}"))
    flows = {"prod": FlowConfig(), "replay": FlowConfig(clock="data")}
    # Detections later than the watermark in transit land in a later update live than in the replay:
    # a loaded 2-core test machine with an embedded broker needs more than the default 0.1 s.
    watermark_s = float(request.config.getoption("--watermark-s"))
    server = Server(database_factory(), mqtt_url, facility, flows=flows, watermark_s=watermark_s)
    recording = tmp_path / "live.dwrec"
    recorder = Recorder(BrokerConfig(url=mqtt_url), facility.site, "prod", recording)
    recorder.start()
    move_s = first_move_s(facility, Scenario(), {"T1"}, step_s=1.0)
    assert move_s is not None
    node = EdgeNode.open(
        EdgeConfig(
            node_id="edge-bay1",
            layout=EXAMPLE_LAYOUT,
            broker=BrokerConfig(url=mqtt_url),
            spool=SpoolConfig(path=tmp_path / "spool.sqlite"),
            capture=CaptureConfig(defaults=CameraSettings(sample_fps=2)),
            sim=SimConfig(epoch=datetime.now(UTC) - timedelta(seconds=move_s - 12)),
            metrics=MetricsConfig(port=0),
        ),
        facility,
        with_sim(),
    )
    try:
        node.start()
        time.sleep(live_s)
        node.stop()
        wait_until(
            lambda: _count(server, "prod") == recorder.counts[TopicKind.DETECTION] > 0,
            storing_s,
            "live detections stored",
        )
        recorder.stop()
        assert read_header(recording)["flow"] == "prod"
        detections = [r for r in read_recording(recording) if "/det/" in r.topic]
        assert len(detections) == _count(server, "prod") > 40

        started = time.monotonic()
        sent = replay(recording, BrokerConfig(url=mqtt_url), "replay", speed=None)
        replay_s = time.monotonic() - started  # publishing only: the database's pace is not the replay's
        assert sent >= len(detections)
        wait_until(
            lambda: _count(server, "replay") == len(detections), storing_s, "every replayed detection stored"
        )
        # Each stored detection has been fused, but the updates it closed reach the database through the
        # state writer's own queue: at top speed on a loaded machine that is seconds behind.
        assert server.service.state_writer.flush(storing_s), "the replay's events not saved in time"
        with Session(server.service.engine) as session:
            last = session.exec(select(func.max(ObservationRow.captured_at))).one()
        assert last is not None
        until = last - timedelta(seconds=1)  # the replay's data clock stops at the last detection
        live, replayed = _events(server, "prod", until), _events(server, "replay", until)
        live_at = _last_positions(server, "prod")
        replayed_at = _last_positions(server, "replay")
    finally:
        server.stop()

    log.info(
        "recorded %.0f s live: %d detections, %d locomotive events; replayed in %.1f s",
        live_s,
        len(detections),
        len(live),
        replay_s,
    )
    # Top speed, not the recorded pace: paced, the publishing alone would take live_s.
    assert replay_s < live_s / 2
    assert {"arrived", "station_freed"} <= {e.kind for e in live}, [_what(e) for e in live]  # the shunt
    # The same events at the same update instants, each live locomotive under one replay id.
    assert [(e.at, *_what(e)) for e in replayed] == [(e.at, *_what(e)) for e in live]
    ids: dict[str, str] = {}
    for event, twin in zip(live, replayed, strict=True):
        assert ids.setdefault(event.loco_id or "", twin.loco_id or "") == (twin.loco_id or "")
    assert len(set(ids.values())) == len(ids)
    for live_id, replay_id in ids.items():
        if live_id:
            assert replayed_at[replay_id] == pytest.approx(live_at[live_id])
