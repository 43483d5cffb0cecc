"""The edge node's configuration: one YAML file, overridable by DEPOTWATCH_EDGE_* environment
variables (nested keys joined by `__`, e.g. DEPOTWATCH_EDGE_BROKER__PASSWORD), validated at start."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Self

from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import SettingsConfigDict

from edge.lpe.model_files import PerformanceHint, Precision, model_path
from shared.errors import ConfigError, ConfigIssue
from shared.ids import Identifier
from shared.layout import Facility, load_facility
from shared.messages import PROD_FLOW
from shared.mqtt import BrokerConfig
from shared.strict import StrictModel
from shared.yaml_config import FileSettings, load_settings


class SpoolConfig(StrictModel):
    """Store-and-forward spool."""

    path: Path = Field(Path("var/spool.sqlite"), description="SQLite file of the outbox.")
    max_megabytes: float = Field(256.0, gt=0, description="Bound on queued payload bytes.")
    backlog_rate_per_s: float = Field(
        200.0, gt=0, description="Messages per second sent from the backlog after an outage."
    )


class LpeConfig(StrictModel):
    """The position estimator."""

    model_dir: Path = Field(Path("ir_models/lpe/2.0.0"), description="Folder of the LPE IR files.")
    precision: Precision = Field("int8", description="Which IR: fp32 or int8.")
    device: str = Field("CPU", description="OpenVINO device: CPU, GPU, NPU, AUTO.")
    batch: int = Field(8, ge=1, le=64, description="Frames per inference batch.")
    requests: int = Field(2, ge=1, le=16, description="Inference requests in flight.")
    hint: PerformanceHint = Field("LATENCY", description="OpenVINO performance hint.")


class ShadowFlowConfig(StrictModel):
    """A flow whose model runs in shadow beside the node's own flow: same frames, its own topics."""

    lpe: LpeConfig = Field(description="The shadow model; its batch and requests as for the main one.")
    threads: int = Field(
        1, ge=1, le=64, description="CPU threads the shadow model may use, so the main flow keeps the rest."
    )


class CameraSettings(StrictModel):
    """Per-camera sampling and gating."""

    enabled: bool = Field(True, description="A disabled camera reports `disabled`; its segment is unseen.")
    sample_fps: float = Field(2.0, gt=0, le=30, description="Frames per second fed to the estimator.")
    motion_gating: bool = Field(True, description="Skip inference while the picture does not change.")
    reconfirm_s: float = Field(10.0, gt=0, description="Infer at least this often even when still.")


class CaptureConfig(StrictModel):
    """Capture and the per-camera watchdog."""

    defaults: CameraSettings = Field(default_factory=CameraSettings)
    cameras: dict[str, CameraSettings] = Field(default_factory=dict, description="Overrides by camera id.")
    stall_after_s: float = Field(5.0, gt=0, description="No frame for this long: the camera is stalled.")
    offline_after_s: float = Field(15.0, gt=0, description="Stalled this long: offline, reconnect.")
    frozen_after_s: float = Field(10.0, gt=0, description="An unchanged picture this long is frozen.")
    black_level: float = Field(12.0, ge=0, description="Mean grey level below which a frame is black.")
    reconnect_backoff_s: tuple[float, float] = Field((1.0, 30.0), description="First and longest wait.")
    open_timeout_s: float = Field(10.0, gt=0, description="Timeout opening an RTSP stream or file.")
    pace_files: bool = Field(True, description="Play video files at their frame rate, like a live camera.")

    def settings_for(self, camera_id: str) -> CameraSettings:
        """The camera's settings, overrides applied."""
        return self.cameras.get(camera_id, self.defaults)


class SimConfig(StrictModel):
    """Simulated cameras (sources sim://<camera id>)."""

    scenario: Path | None = Field(None, description="Scenario YAML; defaults when absent.")
    seed: int | None = Field(None, ge=0, description="Override the scenario's seed.")
    speed: float = Field(1.0, gt=0, le=10000, description="Simulation seconds per wall second.")
    epoch: AwareDatetime | None = Field(
        None, description="Wall time of simulation second 0; nodes sharing it show one world."
    )


class ThumbnailConfig(StrictModel):
    """Thumbnails for the cloud's recognisers."""

    enabled: bool = True
    refresh_s: float = Field(300.0, gt=0, description="Resend a locomotive's thumbnail this often.")
    min_interval_s: float = Field(20.0, ge=0, description="Never more often than this per locomotive.")
    max_width: int = Field(640, ge=64, le=1920, description="Thumbnails are scaled down to this width.")
    jpeg_quality: int = Field(85, ge=30, le=100)


class MetricsConfig(StrictModel):
    """Prometheus metrics and /healthz."""

    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535, description="0 disables the HTTP endpoint.")


class SparkplugConfig(StrictModel):
    """The node and its cameras as a Sparkplug B 3.0 edge node with devices, for the plant's SCADA
    (docs/integrations.md), on the same broker beside the system's own JSON contract."""

    enabled: bool = Field(False, description="Publish NBIRTH/NDATA/DBIRTH/DDATA/NDEATH under spBv1.0/.")
    group_id: Identifier | None = Field(None, description="Sparkplug group id; the layout's site if unset.")
    primary_host_id: Identifier | None = Field(
        None,
        description="The primary host application's id; the cloud's default (depotwatch-<site>) if unset.",
    )
    wait_for_primary_host: bool = Field(
        True,
        description="Births wait for the primary host's STATE to say online, and the spool is held (store "
        "and forward) while it says offline; false: publish whatever the host does.",
    )
    interval_s: float = Field(1.0, gt=0, le=60, description="How often changes are looked for and sent.")


class EdgeConfig(FileSettings):
    """Everything an edge node needs, validated before anything starts."""

    model_config = SettingsConfigDict(
        env_prefix="DEPOTWATCH_EDGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    node_id: Identifier = Field(description="This node's id in the facility layout.")
    layout: Path = Field(description="Facility layout YAML.")
    flow: Identifier = Field(PROD_FLOW, description="Data flow the detections belong to.")
    shadow: dict[Identifier, ShadowFlowConfig] = Field(
        default_factory=dict,
        description="Flows (e.g. dev) whose models run in shadow on the same frames, skipping under load.",
    )
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    lpe: LpeConfig = Field(default_factory=LpeConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    sim: SimConfig = Field(default_factory=SimConfig)
    thumbnails: ThumbnailConfig = Field(default_factory=ThumbnailConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    sparkplug: SparkplugConfig = Field(default_factory=SparkplugConfig)
    status_interval_s: float = Field(10.0, gt=0, description="How often node and camera status is sent.")

    @model_validator(mode="after")
    def _capture_times(self) -> Self:
        if self.capture.offline_after_s < self.capture.stall_after_s:
            raise ValueError("capture.offline_after_s must not be shorter than capture.stall_after_s")
        if self.flow in self.shadow:
            raise ValueError(f"shadow.{self.flow} is the node's own flow; a shadow flow needs another name")
        return self


def load_edge_config(path: Path) -> tuple[EdgeConfig, Facility]:
    """Read the node's YAML (environment overrides applied) and its facility layout; raises
    ConfigError naming each bad key. Relative paths are relative to the working directory."""
    config = load_settings(EdgeConfig, path)
    facility = load_facility(config.layout)
    issues = []
    if config.node_id not in facility.nodes:
        issues.append(ConfigIssue("node_id", f"{config.node_id!r} is not a node of {config.layout}"))
    mine = facility.cameras_of_node(config.node_id)
    issues.extend(
        ConfigIssue(f"capture.cameras.{camera_id}", f"not a camera of node {config.node_id}")
        for camera_id in config.capture.cameras
        if camera_id not in mine
    )
    models = {"lpe": config.lpe} | {f"shadow.{name}.lpe": flow.lpe for name, flow in config.shadow.items()}
    for key, lpe in models.items():
        xml = model_path(lpe.model_dir, lpe.precision)
        issues.extend(
            ConfigIssue(f"{key}.model_dir", f"{model_file} does not exist")
            for model_file in (xml, xml.with_suffix(".bin"))
            if not model_file.is_file()
        )
    issues.extend(config.broker.missing_files())
    if issues:
        raise ConfigError(str(path), issues)
    return config, facility


def sim_epoch(config: EdgeConfig) -> float | None:
    """Wall-clock epoch of simulation second 0, as a UNIX time."""
    return config.sim.epoch.timestamp() if isinstance(config.sim.epoch, datetime) else None
