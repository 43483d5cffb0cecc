"""The compose stack, checked without a Docker engine (none runs here): the file against the Compose
specification's JSON schema (tests/data/compose-spec.schema.json, from docker/compose 1.29.2,
Apache-2.0), every file it mounts from the repository present, the provisioned dashboards the ones the
code generates, and the cloud config valid with the environment compose gives it."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml

from cloud.config import CloudConfig
from cloud.grafana.dashboards import all_dashboards
from shared.mqtt import BrokerConfig, MqttConnection
from shared.yaml_config import load_settings
from tests.brokers import PrivateMosquitto
from tests.conftest import REPO
from tests.waiting import wait_until

COMPOSE = REPO / "compose"
SCHEMA = REPO / "tests" / "data" / "compose-spec.schema.json"


def _compose() -> dict[str, object]:
    document = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text())
    document = {k: v for k, v in _compose().items() if not k.startswith("x-") and k != "name"}
    jsonschema.Draft201909Validator(schema).validate(document)


def test_a_broken_compose_file_is_refused_by_the_same_check() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = {"services": {"cloud": {"image": "x", "ports": "8000:8000", "restart": 3}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft201909Validator(schema).validate(broken)


def test_the_stack_has_its_services_and_every_mounted_repository_file_exists() -> None:
    services = _compose()["services"]
    assert isinstance(services, dict)
    assert set(services) == {"mosquitto", "postgres", "cloud", "recognition", "grafana"}
    generated = {"passwd", "acl", "tls", "ca.crt"}  # written per site (docs/deploy.md)
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", volume.split(":")[0])
            if not source.startswith(".") or Path(source).name in generated:
                continue
            assert (COMPOSE / source).exists(), f"{name} mounts {source}, which is missing"


def test_the_provisioned_dashboards_are_the_generated_ones() -> None:
    for board in all_dashboards():
        path = COMPOSE / "grafana" / "dashboards" / f"{board['uid']}.json"
        assert json.loads(path.read_text()) == board, f"{path} is stale: run `depotwatch grafana export`"


def test_the_cloud_config_is_valid_with_the_environment_compose_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _compose()["x-depotwatch"]["environment"]  # type: ignore[index]
    for key, value in environment.items():
        monkeypatch.setenv(key, re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "s3cret-value", str(value)))
    config = load_settings(CloudConfig, COMPOSE / "cloud.yaml")
    assert config.broker.url == "mqtts://mosquitto:8883" and config.broker.protocol == "5"
    assert config.database_url.startswith("postgresql+psycopg://depotwatch:")


# The shipped broker's settings of what it keeps and how it saves it (the rest is TLS and users).
_KEEPING = (
    "persistence",
    "autosave_interval",
    "autosave_on_changes",
    "max_queued_messages",
    "max_queued_bytes",
)


def test_the_shipped_broker_loses_nothing_it_acknowledged_when_killed(tmp_path: Path) -> None:
    """A persistent session's queued messages, acknowledged to their publisher (so an edge spool has
    deleted them), survive `kill -9` of a Mosquitto run with the shipped settings; with Mosquitto's
    default autosave_interval (1800 s) they did not."""
    shipped = (COMPOSE / "mosquitto" / "mosquitto.conf").read_text().splitlines()
    keeping = [line for line in shipped if line.split(" ", 1)[0] in _KEEPING]
    assert any(line.startswith("persistence true") for line in keeping)
    data = tmp_path / "data"
    data.mkdir()
    broker = PrivateMosquitto(tmp_path, "\n".join([*keeping, f"persistence_location {data}/", ""]))
    broker.start()
    topic, cloud = f"depotwatch-test/{uuid.uuid4().hex[:8]}", f"cloud-{uuid.uuid4().hex[:8]}"
    received: list[bytes] = []
    try:
        subscriber = _session(broker.url, cloud, topic, received)
        subscriber.stop()  # the cloud is away; its session queues for it
        publisher = MqttConnection(BrokerConfig(url=broker.url), f"edge-{uuid.uuid4().hex[:8]}")
        publisher.start()
        assert publisher.wait_connected(5)
        for k in range(300):
            publisher.publish(topic, b"%d" % k)
        wait_until(lambda: publisher.in_flight == 0, 10, "every message acknowledged by the broker")
        publisher.stop()
        time.sleep(2.5)  # beyond the shipped autosave interval, far within the default one
        broker.kill()
        broker.start()
        subscriber = _session(broker.url, cloud, topic, received)
        wait_until(lambda: len(received) == 300, 10, "the 300 queued messages after the crash")
        subscriber.stop()
    finally:
        broker.stop()


def _session(url: str, client_id: str, topic: str, received: list[bytes]) -> MqttConnection:
    link = MqttConnection(BrokerConfig(url=url), client_id, clean_session=False)
    link.subscribe(topic, lambda _t, payload: received.append(payload))
    link.start()
    assert link.wait_connected(5) and link.wait_subscribed(5)
    return link
