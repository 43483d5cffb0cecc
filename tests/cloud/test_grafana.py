"""Grafana dashboards: every panel's SQL runs against a real PostgreSQL filled with simulated data and
returns the columns its visualisation reads; `push` uploads through grafana-client.

No Grafana server can run here, so `push` talks to a small stand-in HTTP server that answers Grafana's
dashboard API the way Grafana documents it (the one mock in these tests, at that boundary).
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from cloud.config import FlowConfig
from cloud.db.engine import make_engine, upgrade
from cloud.flows import FlowRuntime
from cloud.fse import FacilityStateEstimator, Observation, SeenExtent
from cloud.grafana.dashboards import DASHBOARDS, FLOW_VARIABLE_SQL, Panel, all_dashboards
from cloud.grafana.push import GrafanaError, export, push
from cloud.identities import Identities
from cloud.ingest import Ingest
from cloud.state_store import StateStore
from cloud.visits_keeper import VisitsKeeper
from depotwatch.embedded_broker import free_port
from shared.codec import encode
from shared.layout import Facility
from shared.messages import CameraState, TrackSpan
from shared.topics import Topic, TopicKind
from sim.scenario import Scenario
from sim.truth import visible_extents
from sim.world import World
from tests import factories
from tests.conftest import DATABASE_ENV, DatabaseFactory

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def _expand(sql: str, start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros and the dashboard's flow variable (at its default), as Grafana
    expands them."""
    sql = sql.replace("${flow}", "prod")
    sql = sql.replace("$__timeFrom()", f"'{start.isoformat()}'").replace(
        "$__timeTo()", f"'{end.isoformat()}'"
    )
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'", sql
    )
    return re.sub(
        r"\$__timeGroupAlias\((\w+), '1m'\)",
        r"date_trunc('minute', \1) AS time",
        sql,
    )


@pytest.fixture(scope="module")
def filled(database_factory: DatabaseFactory, facility: Facility) -> Iterator[Engine]:
    """Three simulated hours of the example depot: estimator state, events, positions, identities,
    camera and node health, detections."""
    if not (os.environ.get(DATABASE_ENV) or "").startswith("postgresql"):
        pytest.skip("dashboards query PostgreSQL; set DEPOTWATCH_TEST_DATABASE_URL (CI's second pass does)")
    url = database_factory()
    assert make_url(url).get_backend_name() == "postgresql"
    upgrade(url)
    engine = make_engine(url)
    store = StateStore(engine)
    fse = FacilityStateEstimator(facility, new_id=store.id_factory())
    world = World(facility, Scenario(seed=21))
    for step in range(0, 3 * 3600, 60):
        now = START + timedelta(seconds=step)
        locos = world.locos_at(36000 + step)
        for cid in facility.cameras:
            seen = tuple(
                SeenExtent(e.start_m, e.end_m, e.start_beyond_view, e.end_beyond_view, 0.9)
                for e in visible_extents(facility, cid, locos)
            )
            fse.observe(Observation(cid, now, seen))
        store.save(now, fse.locos(), fse.update(now))
    first = fse.locos()[0]
    identities = Identities()
    for _ in range(2):  # two confident reads settle its series and number
        recognition = factories.recognition(
            track_id=first.track_id, span=TrackSpan(start_m=first.start_m, end_m=first.end_m)
        )
        assert identities.observe(recognition, [first], save=store.save_vote) == first.loco_id
    ingest = Ingest(engine, facility)
    ingest.start()
    for k, cid in enumerate(sorted(facility.cameras)):
        node = facility.cameras[cid].node
        status = factories.camera_status(node_id=node, camera_id=cid, state=CameraState.ONLINE)
        ingest.handle(
            str(Topic(TopicKind.CAMERA_STATUS, facility.site, node, camera=cid)), encode(status), lambda: None
        )
        detection = factories.detection_for(facility, cid, seq=k)
        topic = Topic(TopicKind.DETECTION, facility.site, node, flow="prod", camera=cid)
        ingest.handle(str(topic), encode(detection), lambda: None)
    for node in facility.nodes:
        ingest.handle(
            str(Topic(TopicKind.NODE_STATUS, facility.site, node)),
            encode(factories.node_status(node_id=node, spool_depth=3)),
            lambda: None,
        )
    ingest.stop()
    # The station visits the report panels read, kept as the service keeps them.
    runtime = FlowRuntime(
        name="prod",
        config=FlowConfig(),
        fse=fse,
        store=store,
        identities=identities,
        interval=timedelta(seconds=1),
        watermark=timedelta(0),
    )
    VisitsKeeper(engine, {"prod": runtime}, refresh_s=60).refresh(datetime.now(UTC))
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "panel", [p for _, (_, panels) in DASHBOARDS.items() for p in panels], ids=lambda p: p.title
)
def test_every_panel_query_returns_the_columns_it_shows(filled: Engine, panel: Panel) -> None:
    end = datetime.now(UTC) + timedelta(days=1)
    with filled.connect() as connection:
        result = connection.execute(text(_expand(panel.sql, START - timedelta(days=1), end)))
        rows = result.all()
        columns = tuple(result.keys())
    assert columns == panel.columns
    assert rows, f"{panel.title}: no rows from the simulated depot"


def test_the_map_knows_series_and_number_once_identified(filled: Engine) -> None:
    _, panels = DASHBOARDS["depotwatch-facility"]
    with filled.connect() as connection:
        rows = connection.execute(text(_expand(panels[0].sql, START, datetime.now(UTC)))).mappings().all()
        flows = connection.execute(text(FLOW_VARIABLE_SQL)).scalars().all()
    assert "prod" in flows
    assert any(r["number"] == "TE33A-2251" and r["model"] == "TE33A" for r in rows)
    assert {r["track_row"] for r in rows} <= {1, 2, 3, 4}


def test_dashboards_are_valid_grafana_models(tmp_path: Path) -> None:
    for board in all_dashboards():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and board["uid"] in DASHBOARDS
        for p in board["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
            assert p["targets"][0]["refId"] == "A" and p["targets"][0]["rawSql"]
    files = export(tmp_path)
    assert {json.loads(f.read_text())["uid"] for f in files} == set(DASHBOARDS)


class _StandInGrafana(BaseHTTPRequestHandler):
    """Answers POST /api/dashboards/db as Grafana's HTTP API documents it."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    token = ""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(401, {"message": "invalid API key"})
            return
        self.received.append((self.path, body))
        uid = body["dashboard"]["uid"]
        self._reply(200, {"id": 1, "uid": uid, "url": f"/d/{uid}", "status": "success", "version": 1})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Iterator[str]:
    _StandInGrafana.received = []
    _StandInGrafana.token = uuid.uuid4().hex
    server = HTTPServer(("127.0.0.1", free_port()), _StandInGrafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_uploads_every_dashboard_with_the_token(grafana: str) -> None:
    assert push(grafana, _StandInGrafana.token) == list(DASHBOARDS)
    assert [path for path, _ in _StandInGrafana.received] == ["/api/dashboards/db"] * len(DASHBOARDS)
    assert all(body["overwrite"] for _, body in _StandInGrafana.received)


def test_a_refused_push_names_the_dashboard(grafana: str) -> None:
    with pytest.raises(GrafanaError, match="depotwatch-facility"):
        push(grafana, "wrong-token")
