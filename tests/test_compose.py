"""The compose stack, checked without a Docker engine (none runs here): the file against the Compose
specification's JSON schema (tests/data/compose-spec.schema.json, from docker/compose 1.29.2,
Apache-2.0), every file it mounts from the repository present, the provisioned dashboards the ones the
code generates, and the cloud config valid with the environment compose gives it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from cloud.config import CloudConfig
from cloud.grafana.dashboards import all_dashboards
from shared.yaml_config import load_settings
from tests.conftest import REPO

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
