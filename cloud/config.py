"""The cloud service's configuration: one YAML file, overridable by DEPOTWATCH_CLOUD_* environment
variables (nested keys joined by `__`), validated at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError, ConfigIssue
from shared.ids import Identifier
from shared.mqtt import BrokerConfig
from shared.strict import StrictModel
from shared.yaml_config import issues_from


class ApiConfig(StrictModel):
    """The HTTP API."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535)


class IngestConfig(StrictModel):
    """The MQTT subscriber."""

    client_id: Identifier = Field("depotwatch-cloud", description="Fixed, so the broker keeps the session.")
    shared_group: Identifier | None = Field(
        None, description="MQTT 5 shared-subscription group so replicas split the stream (needs protocol 5)."
    )


class CloudConfig(BaseSettings):
    """Everything the cloud service needs."""

    model_config = SettingsConfigDict(
        env_prefix="DEPOTWATCH_CLOUD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    layout: Path = Field(description="Facility layout YAML.")
    database_url: str = Field("sqlite:///var/cloud/depotwatch.sqlite", description="SQLAlchemy URL.")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    update_interval_s: float = Field(0.5, gt=0, le=10, description="How often the state is fused and saved.")
    snapshot_interval_s: float = Field(60.0, gt=0, description="How often the whole state is kept.")
    retention_days: float = Field(
        90.0, gt=0, description="Observations, positions and snapshots older than this are deleted."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings


def load_cloud_config(path: Path) -> CloudConfig:
    """Read and validate the service's YAML; raises ConfigError naming each bad key."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read file: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid YAML: {exc}")]) from exc
    try:
        return CloudConfig(**data)
    except ValidationError as exc:
        raise ConfigError(str(path), issues_from(exc)) from exc
