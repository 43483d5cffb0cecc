"""The cloud service under test: its API on a free port in this process, and a staged locomotive."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud.api.app import create_app
from cloud.api.server import make_server
from cloud.config import ApiConfig, CloudConfig, FlowConfig, IngestConfig
from cloud.service import CloudService
from depotwatch.embedded_broker import free_port
from shared.codec import encode
from shared.layout import Facility
from shared.messages import Detection, LocoExtent, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.conftest import EXAMPLE_LAYOUT
from tests.waiting import wait_until


class Server:
    """The service and its API on a free port, in this process."""

    def __init__(
        self,
        database_url: str,
        mqtt_url: str,
        facility: Facility,
        layout: Path = EXAMPLE_LAYOUT,
        flows: dict[str, FlowConfig] | None = None,
        watermark_s: float = 0.1,
        ingest: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.port = free_port()
        config = CloudConfig(
            layout=layout,
            database_url=database_url,
            broker=BrokerConfig(url=mqtt_url),
            ingest=IngestConfig(client_id=f"cloud-{uuid.uuid4().hex[:8]}", **(ingest or {})),
            api=ApiConfig(port=self.port),
            update_interval_s=0.2,
            watermark_s=watermark_s,
            **({"flows": flows} if flows else {}),
            **settings,
        )
        self.service = CloudService.open(config, facility)
        self.server = make_server(create_app(self.service), "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "the API to start")
        assert self.service.link.wait_connected(5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def call(
        self, path: str, key: str | None = None, method: str = "GET", body: Any = None
    ) -> tuple[int, Any]:
        headers = {"X-API-Key": key} if key else {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw and "json" in response.headers[
                    "Content-Type"
                ] else raw
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def publish_locomotive(mqtt_url: str, facility: Facility) -> list[Detection]:
    """One locomotive across T1-C2 and T1-C3, its node born and its cameras online; returns the
    detections."""
    link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
    link.start()
    assert link.wait_connected(5)
    now = datetime.now(UTC)
    seq = int(now.timestamp() * 1000)
    sent = []
    link.publish(
        str(Topic(TopicKind.NODE_STATE, facility.site, "edge-bay1")), encode(factories.node_birth(at=now))
    )
    for k in range(3):
        at = now + timedelta(milliseconds=100 * k)
        for cid, extent in (("T1-C2", (18.0, 27.3, False, True)), ("T1-C3", (25.4, 36.0, True, False))):
            view = facility.cameras[cid].view
            d = factories.detection(
                node_id="edge-bay1",
                camera_id=cid,
                seq=seq,
                captured_at=at,
                view=TrackSpan(start_m=view.start_m, end_m=view.end_m),
                extents=[
                    LocoExtent(
                        start_m=extent[0],
                        end_m=extent[1],
                        start_beyond_view=extent[2],
                        end_beyond_view=extent[3],
                        confidence=0.9,
                    )
                ],
            )
            seq += 1
            link.publish(
                str(Topic(TopicKind.DETECTION, facility.site, "edge-bay1", flow="prod", camera=cid)),
                encode(d),
            )
            sent.append(d)
    link.stop()
    return sent
