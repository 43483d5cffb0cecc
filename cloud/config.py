"""The cloud service's configuration: one YAML file, overridable by DEPOTWATCH_CLOUD_* environment
variables (nested keys joined by `__`), validated at start."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.ids import Identifier
from shared.mqtt import BrokerConfig
from shared.strict import StrictModel
from shared.yaml_config import FileSettings, load_settings


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


class CloudConfig(FileSettings):
    """Everything the cloud service needs."""

    model_config = SettingsConfigDict(
        env_prefix="DEPOTWATCH_CLOUD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    layout: Path = Field(description="Facility layout YAML.")
    database_url: str = Field("sqlite:///var/cloud/depotwatch.sqlite", description="SQLAlchemy URL.")
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    update_interval_s: float = Field(
        0.1,
        gt=0,
        le=10,
        description="How often the state is fused and saved; bounds how stale the API's state can be.",
    )
    snapshot_interval_s: float = Field(60.0, gt=0, description="How often the whole state is kept.")
    retention_days: float = Field(
        90.0, gt=0, description="Observations, positions and snapshots older than this are deleted."
    )


def load_cloud_config(path: Path) -> CloudConfig:
    """Read and validate the service's YAML; raises ConfigError naming each bad key."""
    return load_settings(CloudConfig, path)
