"""The cloud service: MQTT ingest, one state estimator per data flow with its update loop, persistence
and live feed, each owned here and started and stopped with the HTTP app (FastAPI lifespan).

No estimator update waits for the database: updates are saved by the state writer, so the live state
goes on from memory through a database outage, and `health()` says when any part stops progressing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from cloud.api.public import tracks_public
from cloud.auth import KeyRoles
from cloud.config import CloudConfig
from cloud.db.engine import open_database
from cloud.db.ingest_rows import mark_silent
from cloud.db.watch import DatabaseWatch
from cloud.depot_view import DepotView
from cloud.flows import FlowRuntime, on_grid, restore_flow
from cloud.fse import Event, FacilityStateEstimator, Observation
from cloud.identities import Identities
from cloud.ingest import Ingest, subscriptions
from cloud.live import LiveFeed
from cloud.metrics import CloudMetrics
from cloud.opcua_server import OpcUaServer
from cloud.readiness import notify_ready
from cloud.sparkplug_facility import facility_node
from cloud.sparkplug_host import PrimaryHost
from cloud.state_store import StateStore, Update
from cloud.state_writer import StateWriter
from cloud.thumbnail_asks import ThumbnailAsks
from cloud.visits_keeper import VisitsKeeper
from cloud.webhooks import Webhooks
from shared.codec import encode
from shared.layout import Facility
from shared.messages import PROD_FLOW, Command, CommandRequest, Recognition
from shared.mqtt import MqttConnection
from shared.sparkplug.topics import default_host_id
from shared.topics import Topic, TopicKind, shared_subscription
from shared.yaml_config import write_yaml_atomically

log = logging.getLogger(__name__)

# Retention is enforced this often; deleting old rows is cheap with the time indexes.
PURGE_INTERVAL_S = 3600.0
# Nodes are checked for silence this often at most (and four times per `ingest.node_silence_s`).
SILENCE_CHECK_S = 10.0
# How often the locomotives not yet identified are looked at for thumbnails to ask for.
ASK_CHECK_S = 1.0
# Wake this long after an update instant closes, so that timer jitter never wakes the loop just before.
WAKE_SLACK_S = 0.002
# Observations read back at start: each camera's latest resumes its view, and the numbers they were
# sent under are not fused again when the broker delivers them once more.
RESUMED_OBSERVATIONS = 50_000

# One observation read back at start: its flow, node, seq and id, and the observation itself.
RecentObservation = tuple[str, str, int, uuid.UUID, Observation]


class CloudService:
    """Owns the ingest, the update loop, the state writer, the webhooks and their threads."""

    def __init__(
        self,
        config: CloudConfig,
        facility: Facility,
        engine: Engine,
        *,
        new_id: Callable[[], str],
        flows: dict[str, FlowRuntime],
        recent: Sequence[RecentObservation] = (),
    ) -> None:
        """Wire built parts together; touches neither the database nor the broker (`open` reads what
        the database holds, `start` connects). `recent` are the latest observations stored, oldest
        first (see `_resume_views`)."""
        self.config = config
        self.facility = facility
        self.engine = engine
        self._new_id = new_id
        self.flows = flows
        self.ingest = Ingest(
            engine,
            facility,
            observe=self.observe,
            on_recognition=self.recognised,
            max_clock_skew_s=config.ingest.max_clock_skew_s,
        )
        self._resume_views(recent)
        self.state_writer = StateWriter(engine)
        self.database = DatabaseWatch(config.database_url)
        self.keys = KeyRoles(engine)
        self.webhooks = Webhooks(config.webhooks, engine)
        self.opcua = OpcUaServer(config.opcua, self._depot_view) if config.opcua.enabled else None
        sparkplug = config.sparkplug
        self.sparkplug_host = (
            PrimaryHost(
                config.broker,
                sparkplug.host_id or default_host_id(facility.site),
                f"{config.ingest.client_id}-sparkplug-host",
            )
            if sparkplug.enabled
            else None
        )
        self.sparkplug_node = (
            facility_node(
                sparkplug,
                site=facility.site,
                broker=config.broker,
                client_id=f"{config.ingest.client_id}-sparkplug-node",
                view=self._depot_view,
                engine=engine,
            )
            if sparkplug.enabled
            else None
        )
        self.visits = VisitsKeeper(engine, flows, config.visits_refresh_s)
        self.metrics = CloudMetrics(self.ingest, self.webhooks)
        self._connected_at: float | None = None
        self.link = MqttConnection(
            config.broker,
            config.ingest.client_id,
            clean_session=False,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        for topic_filter in subscriptions(facility.site):
            if config.ingest.shared_group and config.broker.protocol == "5":
                topic_filter = shared_subscription(config.ingest.shared_group, topic_filter)
            self.link.subscribe_acking(topic_filter, self.ingest.handle)
        for runtime in flows.values():
            runtime.live.publish_state(runtime.fse.state())
        rec = config.recognition
        self.thumbnail_asks = ThumbnailAsks(facility, rec.ask_unsettled_after_s, rec.ask_unsettled_max_s)
        self._layout_lock = threading.Lock()
        self._stop = threading.Event()
        self._updated_mono = time.monotonic()  # when the update loop last completed a pass
        self._updater = threading.Thread(target=self._update_loop, name="cloud-fse", daemon=True)
        self._announcer = threading.Thread(target=self._announce_ready, name="cloud-ready", daemon=True)

    @classmethod
    def open(cls, config: CloudConfig, facility: Facility) -> CloudService:
        """The service as the database left it: its schema brought up to date, each flow's
        locomotives and identities restored, the latest observations read back. Not started."""
        engine = open_database(config.database_url)
        try:
            store = StateStore(engine)
            new_id = store.id_factory()
            identities = store.identities()
            flows = {
                name: restore_flow(config, name, engine, facility, new_id, identities)
                for name in config.flows
            }
            recent = store.recent_observations(RESUMED_OBSERVATIONS)
            return cls(config, facility, engine, new_id=new_id, flows=flows, recent=recent)
        except BaseException:
            engine.dispose()  # the service never got it, so nothing else will
            raise

    @property
    def fse(self) -> FacilityStateEstimator:
        """The prod flow's estimator."""
        return self.flows[PROD_FLOW].fse

    @property
    def store(self) -> StateStore:
        """The prod flow's store."""
        return self.flows[PROD_FLOW].store

    @property
    def identities(self) -> Identities:
        """The prod flow's identities."""
        return self.flows[PROD_FLOW].identities

    @property
    def live(self) -> LiveFeed:
        """The prod flow's live feed."""
        return self.flows[PROD_FLOW].live

    def recognised(self, recognition: Recognition) -> None:
        """Count a recognition for the locomotive it shows in each flow it counts in (each flow with
        its own ids; see CloudConfig.counting_flows), each vote saved before it counts: the ingest
        acknowledges the recognition once this returns. A save that fails raises, and the ingest
        tries again (a recognition counts once per flow however often it is delivered)."""
        for name in self.config.counting_flows(recognition.flow):
            runtime = self.flows[name]
            runtime.identities.observe(recognition, runtime.fse.locos(), save=runtime.store.save_vote)

    def observe(self, flow: str, observation: Observation) -> bool | None:
        """Fuse a detection's observation into its flow's estimator; None when no estimator runs that
        flow or the camera is not in the layout, False when it is older than the camera's latest."""
        runtime = self.flows.get(flow)
        return None if runtime is None else runtime.observe(observation, self._update_flow)

    def _depot_view(self) -> DepotView:
        """The prod flow's live state as the map shows it, for OPC UA and Sparkplug."""
        runtime = self.flows[PROD_FLOW]
        facility = runtime.fse.facility
        return DepotView(facility, tracks_public(facility, runtime.live.state, runtime.identities))

    def _resume_views(self, recent: Sequence[RecentObservation]) -> None:
        """Take the latest observations stored: their numbers are not fused again when redelivered,
        and each camera's latest resumes its view in the live flows."""
        for flow, node, seq, observation_id, _ in recent:
            self.ingest.seen.check(flow, node, seq, observation_id)
        now = datetime.now(UTC)
        for runtime in self.flows.values():
            if not runtime.data_clock:
                max_age = runtime.fse.settings.max_age
                mine = [o for flow, *_, o in recent if flow == runtime.name and now - o.at <= max_age]
                runtime.fse.restore_views(mine)

    def start(self) -> None:
        """Start the OPC UA server (first: one that cannot listen stops the start, naming the setting),
        the writers, the database watch, the MQTT link, the update loop and the webhooks."""
        if self.opcua is not None:
            self.opcua.start()
        self.ingest.start()
        self.state_writer.start()
        self.database.start()
        self.link.start()
        self._updater.start()
        self._announcer.start()
        self.webhooks.start()
        self.visits.start()
        if self.sparkplug_host is not None and self.sparkplug_node is not None:
            self.sparkplug_host.start()
            self.sparkplug_node.start()
        log.info(
            "cloud service for %s started (%d locomotives restored)",
            self.facility.site,
            len(self.fse.locos()),
        )

    def stop(self) -> None:
        """Stop and join every thread started, writing what the ingest took first; then close the
        database."""
        self._stop.set()
        if self.sparkplug_host is not None and self.sparkplug_node is not None:
            self.sparkplug_node.stop()  # the facility's NDEATH
            self.sparkplug_host.stop()  # then the host's offline STATE: edge nodes hold their spools
        self.webhooks.stop()
        self.visits.stop()
        if self.opcua is not None:
            self.opcua.stop()
        self._updater.join(10)
        self._announcer.join(5)
        self.link.stop(drain=lambda: self.ingest.flush(5))
        self.ingest.stop()
        self.state_writer.stop()
        self.database.stop()
        self.keys.close()
        self.engine.dispose()
        log.info("cloud service stopped")

    def _announce_ready(self) -> None:
        """Tell a supervisor (cloud.readiness) once the ingest is subscribed: producers started
        after that lose nothing."""
        while not self._stop.is_set():
            if self.link.wait_subscribed(0.5):
                log.info("cloud: subscribed to %s; ready", self.facility.site)
                notify_ready()
                return

    def _on_connect(self) -> None:
        self._connected_at = time.monotonic()

    def _on_disconnect(self) -> None:
        self._connected_at = None

    def health(self) -> list[str]:
        """What is not progressing, one line each; empty when all is well."""
        stall = self.config.health.stall_s
        problems = []
        if not self.link.connected.is_set():
            error = self.link.state().last_error
            problems.append(
                f"MQTT: not connected to {self.config.broker.url} (broker.url)"
                + (f": {error}" if error else "")
            )
        for name, writer in (("ingest", self.ingest.writer), ("state", self.state_writer)):
            if not writer.alive:
                problems.append(f"{name} writer: its thread has stopped")
            elif writer.stalled_s() > stall:
                problems.append(
                    f"{name} writer: the oldest write has waited {writer.stalled_s():.0f} s for the "
                    f"database ({writer.last_error or 'no error yet'})"
                )
        silent = time.monotonic() - self._updated_mono
        if not self._updater.is_alive():
            problems.append("estimator: the update loop has stopped")
        elif silent > stall:
            problems.append(f"estimator: no update for {silent:.0f} s")
        if (
            self.sparkplug_node is not None
            and self.sparkplug_node.thread.ident
            and not self.sparkplug_node.alive
        ):
            problems.append("Sparkplug: the facility node's thread has stopped")
        if self.visits.thread.ident and not self.visits.alive:
            problems.append("station visits: their thread has stopped")
        if self.opcua is not None and not self.opcua.alive:
            problems.append("OPC UA: its server has stopped")
        stopped = [w.name for w in self.webhooks.senders if not w.alive]
        problems += [f"webhook {name}: its thread has stopped" for name in stopped]
        if not self.database.available:
            problems.append(
                f"database: not answering for {self.database.away_s():.0f} s ({self.database.reason})"
            )
        return problems

    def replace_layout(self, facility: Facility, by: str) -> None:
        """Use a new layout of the same site from now on, and keep it in the layout file. Every
        estimator is rebuilt before any is swapped in, and each carries its own layout, so a request
        reading one flow never sees one layout's tracks with another's state."""
        with self._layout_lock:
            write_yaml_atomically(self.config.layout, facility.model_dump(mode="json"))
            rebuilt = {}
            for name, runtime in self.flows.items():
                fse = FacilityStateEstimator(facility, self._new_id, runtime.fse.settings)
                fse.restore([loco for loco in runtime.fse.locos() if loco.track_id in facility.tracks])
                rebuilt[name] = fse
            for name, runtime in self.flows.items():
                runtime.fse = rebuilt[name]
            self.ingest.facility = facility
            self.thumbnail_asks.facility = facility
            kept = self.fse.locos()
            self.facility = facility
        log.info(
            "layout of %s replaced by %s: %d tracks, %d cameras; %d locomotives kept",
            facility.site,
            by,
            len(facility.tracks),
            len(facility.cameras),
            len(kept),
        )

    def send_command(self, node_id: str, command: Command, by: str) -> CommandRequest | None:
        """Publish a command to a node, which answers on its ack topic; returns the request sent, or
        None when the broker is not reachable now (nothing is sent)."""
        if not self.link.connected.is_set():
            # Not handed to paho, which would hold it and send it once connected: after the caller was
            # told it was not sent.
            return None
        request = CommandRequest(
            command_id=uuid.uuid4(), issued_at=datetime.now(UTC), issued_by=by, command=command
        )
        topic = Topic(TopicKind.COMMAND, self.facility.site, node_id)
        return None if self.link.publish(str(topic), encode(request)) is None else request

    def update_once(self, now: datetime | None = None) -> list[Event]:
        """Fuse, save and announce the state of every wall-clock flow as of `now` (by default the last
        update instant a watermark ago) once per instant; returns the prod flow's events."""
        events: list[Event] = []
        for runtime in self.flows.values():
            if runtime.data_clock:
                continue
            at = now
            if at is None:
                at = on_grid(datetime.now(UTC) - runtime.watermark, runtime.interval)
                if runtime.next_tick is not None and at < runtime.next_tick:
                    continue  # this instant is done
                runtime.next_tick = at + runtime.interval
            flow_events = self._update_flow(runtime, at)
            events = flow_events if runtime.name == PROD_FLOW else events
        return events

    def _update_flow(self, runtime: FlowRuntime, now: datetime) -> list[Event]:
        started = time.perf_counter()
        fse = runtime.fse  # once: a layout change may swap it meanwhile (a data-clock flow runs on ingest)
        events = fse.update(now) + runtime.identities.drain_events()
        runtime.updated_at = now
        state = fse.state()
        snapshot = None
        if runtime.next_snapshot is None or now >= runtime.next_snapshot:
            snapshot = state
            runtime.next_snapshot = now + timedelta(seconds=self.config.snapshot_interval_s)
        # Saved by the state writer; the events reach the live feed once saved.
        self.state_writer.put(runtime, Update(now, fse.locos(), events, snapshot))
        self.metrics.fse_seconds.labels(runtime.name).observe(time.perf_counter() - started)
        for event in events:
            self.metrics.events.labels(runtime.name, event.kind.value).inc()
        runtime.live.publish_state(state, runtime.identities.version)
        return events

    def _until_next_instant(self) -> float:
        """Seconds until the next update instant of any wall-clock flow closes (its watermark passed)."""
        now = datetime.now(UTC)
        closes = [
            on_grid(now - rt.watermark, rt.interval) + rt.interval + rt.watermark
            for rt in self.flows.values()
            if not rt.data_clock
        ]
        return (min(closes) - now).total_seconds() + WAKE_SLACK_S if closes else 1.0

    def _update_loop(self) -> None:
        next_purge = next_silence_check = next_ask = 0.0
        # Wake as each update instant closes (its watermark passed), not at some phase after it: the
        # state is then never staler than the watermark plus one interval.
        while not self._stop.wait(self._until_next_instant()):
            try:
                self.update_once()
                self._updated_mono = time.monotonic()
                if time.monotonic() >= next_purge:
                    self.state_writer.job("retention", self._purge)
                    next_purge = time.monotonic() + PURGE_INTERVAL_S
                if time.monotonic() >= next_silence_check:
                    self._check_silence()
                    every = min(SILENCE_CHECK_S, self.config.ingest.node_silence_s / 4)
                    next_silence_check = time.monotonic() + every
                if time.monotonic() >= next_ask:
                    self._ask_thumbnails()
                    next_ask = time.monotonic() + ASK_CHECK_S
            except Exception:
                log.exception("cloud: the state update failed; retrying at the next interval")

    def _ask_thumbnails(self) -> None:
        """Ask the edge for fresh thumbnails of the prod locomotives not yet identified."""
        if not self.link.connected.is_set():
            return  # asked again once connected: nothing is lost by waiting
        for ask in self.thumbnail_asks.due(self.fse.locos(), self.identities.get, time.monotonic()):
            self.send_command(ask.node_id, ask.command, "cloud:recognition")
            log.debug("asked %s for a thumbnail of %s", ask.node_id, ask.command)

    def _purge(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=self.config.retention_days)
        deleted = self.store.purge(cutoff)
        thumbs = timedelta(days=self.config.recognition.thumbnail_retention_days)
        deleted += self.store.purge_thumbnails(datetime.now(UTC) - thumbs)
        if deleted:
            log.info("retention: deleted %d rows older than %s", deleted, cutoff.isoformat())

    def _check_silence(self) -> None:
        """Nodes not heard from for `ingest.node_silence_s` become silent, once this service has been
        connected that long itself (until then, not hearing them says nothing about them)."""
        silence = self.config.ingest.node_silence_s
        connected_at = self._connected_at
        if connected_at is None or time.monotonic() - connected_at < silence:
            return

        def mark() -> None:
            now = datetime.now(UTC)
            for node in mark_silent(self.engine, heard_before=now - timedelta(seconds=silence), now=now):
                log.warning("node %s: nothing heard for %.0f s; shown as silent", node, silence)

        self.state_writer.job("silent nodes", mark)
