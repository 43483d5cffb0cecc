"""The cloud's /healthz names a broker it cannot reach, with the reason, over real HTTP."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from cloud.api.app import create_app
from cloud.api.server import make_server
from cloud.config import ApiConfig, CloudConfig
from cloud.service import CloudService
from depotwatch.embedded_broker import free_port
from shared.layout import Facility
from shared.mqtt import BrokerConfig
from tests.conftest import EXAMPLE_LAYOUT
from tests.waiting import wait_until


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_broker_the_cloud_cannot_reach_is_named_with_the_reason(
    database_url: str, facility: Facility
) -> None:
    broker, port = f"mqtt://127.0.0.1:{free_port()}", free_port()
    config = CloudConfig(
        layout=EXAMPLE_LAYOUT,
        database_url=database_url,
        broker=BrokerConfig(url=broker),
        api=ApiConfig(port=port),
    )
    server = make_server(
        create_app(CloudService.open(config, facility)), "127.0.0.1", port, log_level="warning"
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "the API to start")
        status, body = wait_until(
            lambda: (h := _health(port)) and "connection refused" in str(h[1].get("problems")) and h,
            10,
            "healthz to give the broker's reason",
        )
    finally:
        server.should_exit = True
        thread.join(10)
    assert status == 503
    assert f"MQTT: not connected to {broker} (broker.url): connection refused" in body["problems"]  # type: ignore[operator]
