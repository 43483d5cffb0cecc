"""The cloud service's Prometheus metrics: the ingest's counters read when scraped, the estimator's
update times and the events it emitted, per flow, and each webhook's deliveries and failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud.ingest import Ingest
from cloud.webhooks import Webhooks


class CloudMetrics:
    """Prometheus metrics of the service, in a registry of its own."""

    def __init__(self, ingest: Ingest, webhooks: Webhooks) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for name, help_text, field in (
            ("received", "MQTT messages received", "received"),
            ("stored", "Detections stored", "stored"),
            ("duplicates", "Detections dropped as duplicates", "duplicates"),
            ("dead_letters", "Messages dead-lettered", "dead_letters"),
            ("refused", "Messages the database refused (dead-lettered)", "refused"),
            ("redelivered", "Detections delivered again, not fused again", "redelivered"),
            ("stale", "Detections older than the camera's latest (history only)", "stale"),
            ("unfused", "Detections of a flow no estimator runs (stored only)", "unfused"),
            ("command_acks", "Command acknowledgements from edge nodes", "command_acks"),
            ("handler_errors", "Messages the ingest failed on (dead-lettered)", "handler_errors"),
            ("write_failures", "Database writes that failed, being retried", "write_failures"),
            ("lag_seconds", "Capture to arrival of the latest live detection", "lag_s"),
        ):
            gauge = Gauge(f"depotwatch_cloud_ingest_{name}", help_text, registry=r)
            gauge.set_function(_reader(ingest.counts, field))
        queued = Gauge(
            "depotwatch_cloud_ingest_queued_writes", "Messages waiting for the database", registry=r
        )
        queued.set_function(lambda: float(ingest.pending))
        self.fse_seconds = Histogram(
            "depotwatch_cloud_fse_update_seconds",
            "Time to fuse and save the state",
            ["flow"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.events = Counter("depotwatch_cloud_events", "Events emitted", ["flow", "kind"], registry=r)
        r.register(_WebhookCollector(webhooks))


class _WebhookCollector(Collector):
    """Each webhook's deliveries, failed attempts and events given up (counters since start), and
    whether it is retrying, read when scraped."""

    COUNTERS = (
        ("delivered", "Events a webhook's receiver took"),
        ("failed_attempts", "POSTs a webhook's receiver refused or did not answer"),
        ("given_up", "Events given up after give_up_after_h of failures"),
    )

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks

    def collect(self) -> Iterator[Metric]:
        for field, help_text in self.COUNTERS:
            counter = CounterMetricFamily(f"depotwatch_cloud_webhook_{field}", help_text, labels=["webhook"])
            for status in self.webhooks.statuses():
                counter.add_metric([status.name], getattr(status, field))
            yield counter
        retrying = GaugeMetricFamily(
            "depotwatch_cloud_webhook_retrying", "1 while a webhook retries an event", labels=["webhook"]
        )
        for status in self.webhooks.statuses():
            retrying.add_metric([status.name], float(status.retrying is not None))
        yield retrying


def _reader(counts: object, field: str) -> Callable[[], float]:
    return lambda: float(getattr(counts, field))
