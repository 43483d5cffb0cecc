"""The cloud service: MQTT ingest, one state estimator per data flow with its update loop, persistence
and live feed, each owned here and started and stopped with the HTTP app (FastAPI lifespan)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cloud.config import CloudConfig
from cloud.db.engine import make_engine, upgrade
from cloud.db.models import IdentityRow
from cloud.flows import FlowRuntime, on_grid
from cloud.fse import Event, FacilityStateEstimator, Observation
from cloud.identities import Identities
from cloud.ingest import Ingest
from cloud.live import LiveFeed
from cloud.state_store import StateStore
from shared.layout import Facility
from shared.messages import PROD_FLOW, Recognition
from shared.mqtt import MqttConnection
from shared.topics import ROOT, shared_subscription
from shared.yaml_config import write_yaml_atomically

log = logging.getLogger(__name__)

# Retention is enforced this often; deleting old rows is cheap with the time indexes.
PURGE_INTERVAL_S = 3600.0
# Wake this long after an update instant closes, so that timer jitter never wakes the loop just before.
WAKE_SLACK_S = 0.002


class CloudMetrics:
    """Prometheus metrics of the service, in a registry of its own."""

    def __init__(self, ingest: Ingest) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for name, help_text, field in (
            ("received", "MQTT messages received", "received"),
            ("stored", "Detections stored", "stored"),
            ("duplicates", "Detections dropped as duplicates", "duplicates"),
            ("dead_letters", "Messages dead-lettered", "dead_letters"),
            ("stale", "Detections older than the camera's latest (history only)", "stale"),
            ("unfused", "Detections of a flow no estimator runs (stored only)", "unfused"),
            ("write_failures", "Database writes that failed and are being retried", "write_failures"),
            ("lag_seconds", "Capture to arrival of the latest live detection", "lag_s"),
        ):
            gauge = Gauge(f"depotwatch_cloud_ingest_{name}", help_text, registry=r)
            gauge.set_function(_reader(ingest, field))
        queued = Gauge("depotwatch_cloud_ingest_queued_writes", "Writes waiting for the database", registry=r)
        queued.set_function(lambda: float(ingest.queued_writes))
        self.fse_seconds = Histogram(
            "depotwatch_cloud_fse_update_seconds",
            "Time to fuse and save the state",
            ["flow"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.events = Counter("depotwatch_cloud_events", "Events emitted", ["flow", "kind"], registry=r)


def _reader(ingest: Ingest, field: str) -> Callable[[], float]:
    return lambda: float(getattr(ingest.counts, field))


class CloudService:
    """Owns the ingest, the update loop and their threads."""

    def __init__(self, config: CloudConfig, facility: Facility) -> None:
        self.config = config
        self.facility = facility
        upgrade(config.database_url)
        self.engine = make_engine(config.database_url)
        self._new_id = StateStore(self.engine).id_factory()
        identities = StateStore(self.engine).identities()
        self.flows = {name: self._flow(name, facility, identities) for name in config.flows}
        self.ingest = Ingest(self.engine, facility.site, observe=self.observe, on_recognition=self.recognised)
        self.metrics = CloudMetrics(self.ingest)
        self.link = MqttConnection(
            config.broker, config.ingest.client_id, clean_session=False, on_idle=self.ingest.submit
        )
        topic_filter = f"{ROOT}/{facility.site}/#"
        if config.ingest.shared_group and config.broker.protocol == "5":
            topic_filter = shared_subscription(config.ingest.shared_group, topic_filter)
        self.link.subscribe_acking(topic_filter, self.ingest.handle)
        for runtime in self.flows.values():
            runtime.live.publish(runtime.fse.state(), [])
        self._layout_lock = threading.Lock()
        self._stop = threading.Event()
        self._updater = threading.Thread(target=self._update_loop, name="cloud-fse", daemon=True)

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
        its own ids; see CloudConfig.counting_flows)."""
        for name in self.config.counting_flows(recognition.flow):
            runtime = self.flows[name]
            runtime.identities.observe(recognition, runtime.fse.locos())

    def _flow(self, name: str, facility: Facility, identity_rows: list[IdentityRow]) -> FlowRuntime:
        flow_config = self.config.flows[name]
        store = StateStore(self.engine, name)
        fse = FacilityStateEstimator(facility, self._new_id, flow_config.fse)
        fse.restore(store.present())
        identities = Identities()
        identities.restore(identity_rows)  # ids are unique across flows: every row fits one flow only
        interval = timedelta(seconds=flow_config.update_interval_s or self.config.update_interval_s)
        watermark = timedelta(seconds=self.config.watermark_s)
        return FlowRuntime(name, flow_config, fse, store, identities, interval, watermark)

    def observe(self, flow: str, observation: Observation) -> bool | None:
        """Fuse a detection's observation into its flow's estimator; None when no estimator runs that
        flow or the camera is not in the layout, False when it is older than the camera's latest."""
        runtime = self.flows.get(flow)
        if runtime is None or observation.camera_id not in self.facility.cameras:
            return None
        return runtime.observe(observation, self._update_flow)

    def start(self) -> None:
        self.ingest.start()
        self.link.start()
        self._updater.start()
        log.info(
            "cloud service for %s started (%d locomotives restored)",
            self.facility.site,
            len(self.fse.locos()),
        )

    def stop(self) -> None:
        self._stop.set()
        self._updater.join(10)
        self.link.stop(drain=lambda: self.ingest.flush(5))
        self.ingest.stop()
        self.engine.dispose()
        log.info("cloud service stopped")

    def replace_layout(self, facility: Facility, by: str) -> None:
        """Use a new layout of the same site from now on, and keep it in the layout file."""
        with self._layout_lock:
            write_yaml_atomically(self.config.layout, facility.model_dump(mode="json"))
            for runtime in self.flows.values():
                fse = FacilityStateEstimator(facility, self._new_id, runtime.fse.settings)
                fse.restore([loco for loco in runtime.fse.locos() if loco.track_id in facility.tracks])
                runtime.fse = fse
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
        runtime.store.save(now, fse.locos(), events)
        runtime.store.save_identities(runtime.identities.drain_changed(), now)
        if runtime.data_clock and (runtime.next_snapshot is None or now >= runtime.next_snapshot):
            runtime.store.snapshot(now, fse.state())
            runtime.next_snapshot = now + timedelta(seconds=self.config.snapshot_interval_s)
        self.metrics.fse_seconds.labels(runtime.name).observe(time.perf_counter() - started)
        for event in events:
            self.metrics.events.labels(runtime.name, event.kind.value).inc()
        runtime.live.publish(fse.state(), events, runtime.identities.version)
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
        next_snapshot = next_purge = 0.0
        # Wake as each update instant closes (its watermark passed), not at some phase after it: the
        # state is then never staler than the watermark plus one interval.
        while not self._stop.wait(self._until_next_instant()):
            try:
                self.update_once()
                if time.monotonic() >= next_snapshot:
                    for runtime in self.flows.values():
                        # As of the instant of its last update: a snapshot newer than its state would
                        # hide locomotives that arrived in between from questions about the past.
                        if not runtime.data_clock and runtime.updated_at is not None:
                            runtime.store.snapshot(runtime.updated_at, runtime.fse.state())
                    next_snapshot = time.monotonic() + self.config.snapshot_interval_s
                if time.monotonic() >= next_purge:
                    cutoff = datetime.now(UTC) - timedelta(days=self.config.retention_days)
                    deleted = self.store.purge(cutoff)
                    thumbs = timedelta(days=self.config.recognition.thumbnail_retention_days)
                    deleted += self.store.purge_thumbnails(datetime.now(UTC) - thumbs)
                    if deleted:
                        log.info("retention: deleted %d rows older than %s", deleted, cutoff.isoformat())
                    next_purge = time.monotonic() + PURGE_INTERVAL_S
            except Exception:
                log.exception("cloud: the state update failed; retrying at the next interval")
