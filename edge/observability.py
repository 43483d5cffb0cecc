"""Prometheus metrics of an edge node and its HTTP endpoint (/metrics, /healthz)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)


class EdgeMetrics:
    """The node's metrics in a registry of its own (several nodes may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_captured = Counter(
            "depotwatch_edge_frames_captured", "Frames read", ["camera"], registry=r
        )
        self.frames_inferred = Counter(
            "depotwatch_edge_frames_inferred", "Frames inferred", ["camera"], registry=r
        )
        self.frames_dropped = Counter(
            "depotwatch_edge_frames_dropped",
            "Sampled frames replaced before inference",
            ["camera"],
            registry=r,
        )
        self.frames_gated = Counter(
            "depotwatch_edge_frames_gated", "Frames skipped by the motion gate", ["camera"], registry=r
        )
        self.shadow_frames_inferred = Counter(
            "depotwatch_edge_shadow_frames_inferred", "Frames a shadow flow inferred", ["flow"], registry=r
        )
        self.shadow_frames_skipped = Counter(
            "depotwatch_edge_shadow_frames_skipped",
            "Frames a shadow flow skipped to keep up with the main flow",
            ["flow"],
            registry=r,
        )
        self.shadow_failures = Counter(
            "depotwatch_edge_shadow_failures", "Batches a shadow model failed on", ["flow"], registry=r
        )
        self.camera_fps = Gauge(
            "depotwatch_edge_camera_fps", "Captured frames per second", ["camera"], registry=r
        )
        self.camera_online = Gauge(
            "depotwatch_edge_camera_online", "1 when the camera is online", ["camera"], registry=r
        )
        self.reconnects = Gauge(
            "depotwatch_edge_camera_reconnects_last_hour", "Reconnects", ["camera"], registry=r
        )
        self.inference_seconds = Histogram(
            "depotwatch_edge_inference_seconds",
            "Time to estimate one batch",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.publish_seconds = Histogram(
            "depotwatch_edge_publish_seconds",
            "From spooling to the broker's acknowledgement",
            registry=r,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
        )
        self.published_bytes = Counter(
            "depotwatch_edge_published_bytes",
            "Payload bytes acknowledged by the broker",
            ["kind"],
            registry=r,
        )
        self.spool_depth = Gauge("depotwatch_edge_spool_depth", "Messages waiting in the spool", registry=r)
        self.spool_bytes = Gauge("depotwatch_edge_spool_bytes", "Bytes waiting in the spool", registry=r)
        self.spool_dropped = Gauge(
            "depotwatch_edge_spool_dropped", "Messages dropped by a full spool", ["kind"], registry=r
        )
        self.mqtt_connected = Gauge(
            "depotwatch_edge_mqtt_connected", "1 when connected to the broker", registry=r
        )
        self.mqtt_reconnects = Counter("depotwatch_edge_mqtt_connects", "Connections made", registry=r)
        self.mqtt_connect_failures = Counter(
            "depotwatch_edge_mqtt_connect_failures",
            "Connection attempts that failed (unreachable, refused, TLS, credentials)",
            registry=r,
        )
        self.commands = Counter("depotwatch_edge_commands", "Remote commands", ["result"], registry=r)


class HealthServer:
    """Serves /metrics and /healthz on its own thread: `start()` binds the port, `stop()` shuts it down."""

    def __init__(
        self, host: str, port: int, metrics: EdgeMetrics, health: Callable[[], dict[str, Any]]
    ) -> None:
        registry = metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                elif self.path == "/healthz":
                    report = health()
                    body = json.dumps(report).encode()
                    status, ctype = (200 if report["healthy"] else 503), "application/json"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health server: " + format, *args)

        self._address = (host, port)
        self._handler = Handler
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the port and serve /metrics and /healthz on a thread of their own."""
        self._server = ThreadingHTTPServer(self._address, self._handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge-http", daemon=True)
        self._thread.start()
        log.info("metrics and health on http://%s:%d/metrics and /healthz", *self._server.server_address[:2])

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
