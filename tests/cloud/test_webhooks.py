"""Event webhooks against a real HTTP receiver (a local server standing for a depot's MES): signed
bodies checked with an HMAC computed here, retries through refusals and an outage, nothing lost across
a restart of the sender, filters, giving up, and the service's wiring (API, metrics)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlmodel import Session, select

from cloud import webhooks
from cloud.auth import Role, create_key
from cloud.config import CloudConfig, WebhookConfig
from cloud.db.engine import open_database
from cloud.db.ingest_rows import apply_lifecycle, mark_silent
from cloud.db.models import EventRow, IdentityRow
from cloud.fse import Event, EventKind
from cloud.state_store import StateStore, Update
from cloud.webhooks import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSender,
    shown_url,
    unknown_tracks,
)
from depotwatch.embedded_broker import free_port
from shared.layout import Facility
from shared.messages import NodeState
from tests import factories
from tests.cloud.servers import Server, publish_locomotive
from tests.conftest import DATABASE_ENV, EXAMPLE_LAYOUT, DatabaseFactory
from tests.waiting import wait_until

SECRET = "s3cr3t-of-the-depot-mes"


class Receiver:
    """Records every POST it takes; refuses the next `refuse` with a 503; can be taken down and up on
    the same port."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s  # before answering: a slow receiver
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/depotwatch"
        self.taken: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self.refuse = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    refuse = receiver.refuse > 0
                    if refuse:
                        receiver.refuse -= 1
                        receiver.refused += 1
                    else:
                        receiver.taken.append((dict(self.headers), body))
                self.send_response(503 if refuse else 204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.taken]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.up()
    yield r
    if r._server is not None:
        r.down()


@pytest.fixture
def engine(database_factory: DatabaseFactory) -> Iterator[Engine]:
    e = open_database(database_factory())
    yield e
    e.dispose()


def _hook(url: str, **overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {"url": url, "secret": SECRET, "first_retry_s": 0.05, "max_retry_s": 0.2}
    return WebhookConfig.model_validate(fields | overrides)


def _save(store: StateStore, *events: Event) -> None:
    store.save_updates([Update(at=events[-1].at, locos=[], events=list(events))])


def _event(kind: EventKind, loco: str | None, track: str = "T1", minutes: float = 0.0) -> Event:
    at = datetime.now(UTC) + timedelta(minutes=minutes)
    return Event(at, kind, track, loco, "S1" if loco else None, None, f"{kind} of {loco}")


def _sender(name: str, hook: WebhookConfig, engine: Engine) -> WebhookSender:
    sender = WebhookSender(name, hook, engine)
    sender.start()
    wait_until(lambda: sender.status.cursor is not None, 10, "the sender to read its cursor")
    return sender


def test_events_arrive_signed_in_order_through_refusals_an_outage_and_a_restart(
    engine: Engine, receiver: Receiver
) -> None:
    store = StateStore(engine)
    _save(store, _event(EventKind.ARRIVED, "L1"))  # before the webhook existed: never sent
    hook = _hook(receiver.url, tracks=["T1"], kinds=["arrived", "moved", "departed", "node_offline"])
    with Session(engine) as session:
        session.add(IdentityRow(loco_id="L7", series="TEM2", plate="TEM2-0412", updated_at=datetime.now(UTC)))
        session.commit()
    receiver.refuse = 2
    sender = _sender("mes", hook, engine)
    _save(store, _event(EventKind.ARRIVED, "L7"), _event(EventKind.CAMERA_UNSEEN, None))
    _save(store, _event(EventKind.ARRIVED, "L8", track="T2"), _event(EventKind.MOVED, "L7"))
    wait_until(lambda: len(receiver.taken) == 2, 10, "the first two events past two refusals")

    receiver.down()
    _save(store, _event(EventKind.MOVED, "L7"), _event(EventKind.DEPARTED, "L7"))
    wait_until(lambda: sender.status.failed_attempts >= 4, 10, "attempts failing while the receiver is down")
    assert sender.status.retrying is not None
    assert "not reached" in sender.status.last_error
    receiver.up()
    wait_until(lambda: len(receiver.taken) == 4, 10, "the events sent while it was down")
    sender.signal_stop()
    sender.join(5)

    # Events stored while no sender ran are sent by the next one, from where the last one stopped.
    apply_lifecycle(engine, message=factories.node_birth(node_id="edge-bay3"), now=datetime.now(UTC))
    death = factories.node_birth(node_id="edge-bay3", state=NodeState.OFFLINE, reason="power cut")
    apply_lifecycle(engine, message=death, now=datetime.now(UTC))
    _save(store, _event(EventKind.ARRIVED, "L9"))
    again = _sender("mes", hook, engine)
    wait_until(lambda: len(receiver.taken) == 6, 10, "the events stored while no sender ran")
    again.signal_stop()
    again.join(5)

    bodies = receiver.bodies()
    assert [(b["kind"], b["loco_id"]) for b in bodies] == [
        ("arrived", "L7"),
        ("moved", "L7"),
        ("moved", "L7"),
        ("departed", "L7"),
        ("node_offline", None),
        ("arrived", "L9"),
    ]
    ids = [b["id"] for b in bodies]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert (
        bodies[0]["series"] == "TEM2" and bodies[0]["number"] == "TEM2-0412" and bodies[0]["flow"] == "prod"
    )
    assert bodies[4]["node_id"] == "edge-bay3" and "power cut" in bodies[4]["detail"]
    for headers, body in receiver.taken:
        stamp = headers[TIMESTAMP_HEADER]
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], f"sha256={expected}")
        assert abs(time.time() - int(stamp)) < 300, "signed at another time than sent"
        assert headers[EVENT_HEADER] == str(json.loads(body)["id"])
        assert headers["Content-Type"] == "application/json"
    assert receiver.taken[0][0][ATTEMPT_HEADER] == "3"  # after the two refusals
    assert receiver.refused == 2
    assert sender.status.delivered == 4 and again.status.delivered == 2


def test_an_event_refused_for_longer_than_the_limit_is_given_up_and_the_next_sent(
    engine: Engine, receiver: Receiver
) -> None:
    store = StateStore(engine)
    sender = _sender("erp", _hook(receiver.url, give_up_after_h=1 / 3600), engine)  # a second
    receiver.refuse = 10**6
    _save(store, _event(EventKind.ARRIVED, "L1"), _event(EventKind.ARRIVED, "L2"))
    wait_until(lambda: sender.status.given_up == 1, 10, "the first event given up")
    receiver.refuse = 0
    wait_until(lambda: receiver.taken, 10, "the second event")
    sender.signal_stop()
    sender.join(5)
    assert [b["loco_id"] for b in receiver.bodies()] == ["L2"]
    assert sender.status.given_up == 1 and sender.status.retrying is None


def test_a_node_going_online_offline_and_silent_is_an_event_of_no_track(engine: Engine) -> None:
    now = datetime.now(UTC)
    apply_lifecycle(engine, message=factories.node_birth(node_id="edge-bay1"), now=now)
    assert mark_silent(engine, heard_before=now + timedelta(seconds=1), now=now) == ["edge-bay1"]
    with Session(engine) as session:
        rows = session.exec(select(EventRow).order_by(EventRow.id)).all()
    assert [(r.kind, r.node_id, r.track_id, r.flow) for r in rows] == [
        ("node_online", "edge-bay1", "", "prod"),
        ("node_offline", "edge-bay1", "", "prod"),
    ]
    assert rows[1].detail.startswith("silent: nothing heard since")


def test_the_service_sends_its_events_and_shows_each_webhook(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility, receiver: Receiver
) -> None:
    slow = Receiver(delay_s=30.0)  # answers long after the webhook's timeout
    slow.up()
    hooks = {
        "mes": _hook(receiver.url, kinds=["arrived"]),
        "dead": _hook(f"http://127.0.0.1:{free_port()}/"),
        "slow": _hook(slow.url, timeout_s=0.5),
    }
    server = Server(database_factory(), mqtt_url, facility, webhooks=hooks)
    try:
        operator = create_key(server.service.engine, Role.OPERATOR, "shift lead")
        viewer = create_key(server.service.engine, Role.VIEWER, "map")
        wait_until(
            lambda: all(s.cursor is not None for s in server.service.webhooks.statuses()), 10, "cursors"
        )
        publish_locomotive(mqtt_url, facility)
        [arrived] = wait_until(receiver.bodies, 10, "the arrival")
        assert arrived["kind"] == "arrived" and arrived["track_id"] == "T1"

        assert server.call("/api/webhooks", viewer)[0] == 403
        status, hooks_shown = server.call("/api/webhooks", operator)
        assert status == 200
        shown = {h["name"]: h for h in hooks_shown}
        assert shown["mes"]["delivered"] == 1 and shown["mes"]["kinds"] == ["arrived"]
        assert shown["mes"]["url"] == receiver.url and "secret" not in json.dumps(hooks_shown)
        assert shown["dead"]["failed_attempts"] >= 1 and shown["dead"]["retrying"] is not None
        assert "not reached" in shown["dead"]["last_error"] and shown["dead"]["delivered"] == 0
        # The slow receiver holds up its own events only: the arrival reached the others meanwhile.
        wait_until(
            lambda: server.service.webhooks.statuses()[2].failed_attempts, 10, "the slow one timing out"
        )
        assert "no answer within 0.5 s" in server.service.webhooks.statuses()[2].last_error
        metrics = server.call("/metrics")[1].decode()
        assert 'depotwatch_cloud_webhook_delivered_total{webhook="mes"} 1.0' in metrics
        assert 'depotwatch_cloud_webhook_retrying{webhook="dead"} 1.0' in metrics
        assert server.call("/healthz")[0] == 200  # a dead receiver is not the service's ill health
    finally:
        server.stop()
        slow.down()


@pytest.mark.parametrize(
    ("hook", "key", "message"),
    [
        ({"url": "http://mes.local/in", "secret": "changeme"}, "webhooks.mes.secret", "placeholder"),
        ({"url": "http://mes.local/in", "secret": "short"}, "webhooks.mes.secret", "at least 16"),
        ({"url": "ftp://mes.local/in", "secret": SECRET}, "webhooks.mes.url", "URL scheme"),
        ({"url": "http://mes.local/in", "secret": SECRET, "kinds": ["teleported"]}, "webhooks.mes.kinds", ""),
        ({"url": "http://mes.local/in", "secret": SECRET, "flow": "dev"}, "webhooks.mes.flow", "not one of"),
    ],
)
def test_a_bad_webhook_setting_is_refused_naming_its_key(
    hook: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CloudConfig(layout=EXAMPLE_LAYOUT, webhooks={"mes": hook})
    text = str(caught.value)
    assert key in text and message in text


def test_a_webhook_track_the_layout_lacks_is_named(facility: Facility) -> None:
    hooks = {"mes": _hook("http://mes.local/in", tracks=["T1", "T9"])}
    [issue] = unknown_tracks(hooks, set(facility.tracks))
    assert str(issue) == "webhooks.mes.tracks: 'T9' is not a track of the layout"


@pytest.mark.parametrize("outcome", ["committed", "rolled back"])
def test_an_event_committed_after_a_later_one_is_sent_first_and_a_rolled_back_one_not_waited_for(
    engine: Engine, receiver: Receiver, outcome: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip(f"needs a PostgreSQL server: set {DATABASE_ENV} (CI's second pass does)")
    monkeypatch.setattr(webhooks, "GAP_WAIT_S", 2.0)
    store = StateStore(engine)
    sender = _sender("mes", _hook(receiver.url), engine)
    # The state writer's transaction draws the lower id and is still open when the ingest's commits.
    slow = Session(engine)
    slow.add(EventRow(flow="prod", at=datetime.now(UTC), kind="arrived", track_id="T1", loco_id="L1"))
    slow.flush()
    _save(store, _event(EventKind.ARRIVED, "L2"))
    time.sleep(1.0)
    assert receiver.taken == [], "the later id is not sent while the earlier one may still come"
    if outcome == "committed":
        slow.commit()
        wait_until(lambda: len(receiver.taken) == 2, 10, "both events")
        assert [b["loco_id"] for b in receiver.bodies()] == ["L1", "L2"]
    else:
        slow.rollback()
        wait_until(lambda: receiver.taken, 10, "the event after the rolled back one")
        assert [b["loco_id"] for b in receiver.bodies()] == ["L2"]
    slow.close()
    sender.signal_stop()
    sender.join(5)


def test_a_receiver_that_answers_garbage_is_retried_and_the_sender_goes_on(engine: Engine) -> None:
    receiver = Receiver()
    listener = socket.create_server(("127.0.0.1", receiver.port))
    garbage = threading.Event()

    def answer_garbage() -> None:
        listener.settimeout(0.2)
        while not garbage.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        listener.close()

    thread = threading.Thread(target=answer_garbage)
    thread.start()
    sender = _sender("mes", _hook(receiver.url), engine)
    try:
        _save(StateStore(engine), _event(EventKind.ARRIVED, "L1"))
        wait_until(lambda: sender.status.failed_attempts >= 2, 10, "the garbage answers counted")
        assert sender.alive and "BadStatusLine" in sender.status.last_error
        garbage.set()
        thread.join(5)
        receiver.up()
        wait_until(lambda: receiver.taken, 10, "the event once the receiver speaks HTTP")
        assert [b["loco_id"] for b in receiver.bodies()] == ["L1"]
    finally:
        sender.signal_stop()
        sender.join(5)
        receiver.down()


def test_the_url_shown_leaves_out_credentials_and_the_query() -> None:
    assert shown_url("https://user:pw@mes.depot:8443/in?token=abc") == "https://mes.depot:8443/in?…"
    assert shown_url("http://mes.depot/in") == "http://mes.depot/in"
