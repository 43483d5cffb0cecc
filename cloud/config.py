"""The cloud service's configuration: one YAML file, overridable by DEPOTWATCH_CLOUD_* environment
variables (nested keys joined by `__`), validated at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from cloud.db.urls import check_database_url
from cloud.fse import EventKind, FseSettings
from cloud.recognition.check_digits import CheckDigit
from shared.envelope import load_envelope
from shared.errors import ConfigError, ConfigIssue
from shared.ids import Identifier
from shared.messages import PROD_FLOW
from shared.mqtt import PLACEHOLDER_SECRETS, BrokerConfig
from shared.strict import StrictModel
from shared.yaml_config import FileSettings, load_settings


class ApiConfig(StrictModel):
    """The HTTP API."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=1, le=65535)


class HealthConfig(StrictModel):
    """When /healthz turns unhealthy (503)."""

    stall_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="A write that has waited this long for the database, or no estimator update for this "
        "long, is a part not progressing.",
    )


class IngestConfig(StrictModel):
    """The MQTT subscriber."""

    client_id: Identifier = Field("depotwatch-cloud", description="Fixed, so the broker keeps the session.")
    shared_group: Identifier | None = Field(
        None, description="MQTT 5 shared-subscription group so replicas split the stream (needs protocol 5)."
    )
    max_clock_skew_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="How far ahead of the cloud's clock a message's time may be; later is a dead letter "
        "(a clock running ahead, or a forgery, would outrank every real message after it).",
    )
    node_silence_s: float = Field(
        60.0,
        ge=1,
        le=86400,
        description="A node that sends no birth or status for this long is shown as silent (edge nodes "
        "send their status every status_interval_s, 10 s by default).",
    )


class PlateFormat(StrictModel):
    r"""A number format with more than a regex: e.g. `{pattern: '\d{12}', check_digit: uic}` for European
    vehicle numbers, `{pattern: '\d{8}', check_digit: wagon1520}` for the 1520 mm railways' wagons."""

    pattern: str = Field(
        description="Regex of the whole number, upper case (digits alone where a check digit "
        "is set: spaces and dashes are taken out first)."
    )
    check_digit: CheckDigit | None = Field(
        None,
        description="uic (12-digit UIC/EVN number) or wagon1520 (8-digit wagon number); a read whose "
        "check digit is wrong is no number.",
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        return _regex(pattern)


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc
    return pattern


def _kind_of_format(value: Any) -> str:
    return "regex" if isinstance(value, str) else "format"


# A number format in the config: a regex alone, or a PlateFormat (errors name the one that was meant).
FormatSetting = Annotated[
    Annotated[str, AfterValidator(_regex), Tag("regex")] | Annotated[PlateFormat, Tag("format")],
    Discriminator(_kind_of_format),
]

# Painted-number formats of the example fleet (series name, dash, digits); a depot configures its own.
DEFAULT_PLATE_FORMATS: dict[str, str | PlateFormat] = {
    "TEM2": r"TEM2-\d{4}",
    "CHME3": r"CHME3-\d{4}",
    "2TE116": r"2TE116-\d{4}",
    "2TE25A": r"2TE25A-\d{3}",
    "TE33A": r"TE33A-\d{4}",
    "2M62": r"2M62-\d{4}",
}


class RecognitionModels(StrictModel):
    """The recognition models and the settings that go with them: what a flow can choose its own of."""

    series_model_dir: Path = Field(
        Path("ir_models/loco_model/1.0.0"), description="Series classifier IR folder."
    )
    plate_model_dir: Path = Field(
        Path("ir_models/plate/1.0.0"), description="OCR detector and recogniser IR."
    )
    series_threshold: float = Field(0.6, gt=0, lt=1, description="Below this the series is 'unknown'.")


class FlowRecognition(StrictModel):
    """A flow's own recognition: each key unset takes prod's (the `recognition` section's) value."""

    series_model_dir: Path | None = Field(None, description="Series classifier IR folder.")
    plate_model_dir: Path | None = Field(None, description="OCR detector and recogniser IR.")
    series_threshold: float | None = Field(
        None, gt=0, lt=1, description="Below this the series is 'unknown'."
    )


class RecognitionConfig(RecognitionModels):
    """The recognition worker (`depotwatch cloud recognise`), prod's models and how the cloud votes on
    their readings."""

    device: str = Field("CPU", description="OpenVINO device for both models.")
    workers: int = Field(
        1, ge=1, le=16, description="Thumbnails recognised at once, each by its own copy of the models."
    )
    inference_threads: int = Field(
        0, ge=0, le=64, description="OpenVINO threads per model; 0 lets OpenVINO use every core."
    )
    plate_formats: dict[str, FormatSetting] = Field(
        default_factory=lambda: dict(DEFAULT_PLATE_FORMATS),
        description="The fleet's number formats by series or kind of vehicle: a regex of the whole plate "
        "(upper case, as read), or a PlateFormat with a check digit.",
    )
    fleet_file: Path | None = Field(
        None, description="Known plate numbers, one per line; reads are matched to them."
    )
    client_id: Identifier = Field("depotwatch-recognition", description="MQTT client id of the worker.")
    shared_group: Identifier | None = Field(
        "recognition", description="MQTT 5 shared-subscription group, so several workers split thumbnails."
    )
    thumbnail_retention_days: float = Field(7.0, gt=0, description="Stored thumbnails are kept this long.")
    ask_unsettled_after_s: float = Field(
        30.0,
        gt=0,
        description="A locomotive whose series or number is not settled this long after it was first seen "
        "gets a fresh thumbnail asked of every camera that sees it, again after twice as long, and so on "
        "up to ask_unsettled_max_s (the edge refreshes thumbnails every 300 s by itself).",
    )
    ask_unsettled_max_s: float = Field(
        300.0, gt=0, description="The longest wait between two asks for a locomotive not yet identified."
    )


class CalibrationConfig(StrictModel):
    """The calibration workbench (`/calibrate`) and its API."""

    lpe_model_dir: Path = Field(
        Path("ir_models/lpe/2.0.0"),
        description="The edge's LPE model folder: a fit's mounting is checked against the envelope it "
        "declares (envelope.yaml), as `depotwatch layout check` does.",
    )

    def problems(self, key: str = "calibration") -> list[ConfigIssue]:
        """What is wrong with the model folder, as issues under `key`: missing, or its envelope
        malformed; a service checks this when it loads its config, so it fails at start."""
        if not self.lpe_model_dir.is_dir():
            return [ConfigIssue(f"{key}.lpe_model_dir", f"{self.lpe_model_dir} is not a folder")]
        try:
            load_envelope(self.lpe_model_dir)
        except ConfigError as exc:
            return [ConfigIssue(f"{key}.lpe_model_dir", str(exc))]
        return []


class SparkplugConfig(StrictModel):
    """Sparkplug B 3.0 for the plant's SCADA (docs/integrations.md): the cloud as the primary host
    application (its retained STATE, with a Will) and the facility as a Sparkplug edge node with a
    device per track and per station, on the cloud's broker beside the system's own JSON contract."""

    enabled: bool = Field(False, description="Publish the STATE and the facility under spBv1.0/.")
    group_id: Identifier | None = Field(None, description="Sparkplug group id; the layout's site if unset.")
    host_id: Identifier | None = Field(
        None, description="The primary host id edge nodes wait for; depotwatch-<site> if unset."
    )
    node_id: Identifier = Field("facility", description="The facility's Sparkplug edge node id.")
    interval_s: float = Field(1.0, gt=0, le=60, description="How often changes are looked for and sent.")


class OpcUaConfig(StrictModel):
    """The facility served read-only over OPC UA for a SCADA (docs/integrations.md)."""

    enabled: bool = Field(False, description="Serve the facility over OPC UA.")
    endpoint: str = Field(
        "opc.tcp://0.0.0.0:4840/depotwatch", description="opc.tcp://host:port/path to listen on."
    )
    application_uri: str = Field(
        "urn:depotwatch:cloud", description="The server's application URI; its certificate must carry it."
    )
    security: Literal["basic256sha256", "none"] = Field(
        "basic256sha256",
        description="basic256sha256: one endpoint, Basic256Sha256 SignAndEncrypt, for clients whose "
        "certificate is in trusted_clients; none: no security and anonymous access (an isolated "
        "network only; never the default).",
    )
    certificate_file: Path | None = Field(
        None, description="The server's certificate (DER or PEM; `depotwatch cloud opcua-certificate`)."
    )
    private_key_file: Path | None = Field(None, description="The server's private key (PEM).")
    trusted_clients: Path | None = Field(
        None, description="A folder of the client certificates (DER or PEM) allowed to connect."
    )
    update_interval_s: float = Field(0.5, gt=0, le=60, description="How often the values follow the state.")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.fullmatch(r"opc\.tcp://[^/:]+:\d+(/.*)?", value):
            raise ValueError(f"{value!r} is not opc.tcp://host:port/path")
        return value

    @model_validator(mode="after")
    def _secured(self) -> Self:
        if self.enabled and self.security == "basic256sha256":
            for key in ("certificate_file", "private_key_file", "trusted_clients"):
                if getattr(self, key) is None:
                    raise ValueError(f"{key} is needed with security basic256sha256 (or set security: none)")
        return self

    def problems(self, key: str = "opcua") -> list[ConfigIssue]:
        """The files it names that do not exist, as issues under `key`."""
        if not self.enabled:
            return []
        named = {
            "certificate_file": self.certificate_file,
            "private_key_file": self.private_key_file,
            "trusted_clients": self.trusted_clients,
        }
        issues = [
            ConfigIssue(f"{key}.{name}", f"{path} does not exist")
            for name, path in named.items()
            if path is not None and not path.exists()
        ]
        if self.trusted_clients is not None and self.trusted_clients.is_file():
            issues.append(ConfigIssue(f"{key}.trusted_clients", f"{self.trusted_clients} is not a folder"))
        return issues


class FlowConfig(StrictModel):
    """One data flow's state estimator. Detections of a flow not listed here are stored, not fused."""

    clock: Literal["wall", "data"] = Field(
        "wall",
        description="wall: the estimator runs on the wall clock (live flows); data: on the capture times "
        "of the flow's detections, so a recording replayed at any speed gives the results it gave live.",
    )
    update_interval_s: float | None = Field(
        None, gt=0, le=10, description="Estimator cadence of this flow; update_interval_s when unset."
    )
    fse: FseSettings = Field(default_factory=FseSettings, description="The flow's estimator settings.")
    recognition: FlowRecognition | None = Field(
        None,
        description="Recognition models of its own: the worker reads this flow's thumbnails with them, "
        "and a live flow's also prod's thumbnails; unset, the flow counts prod's recognitions.",
    )


MODEL_KEYS = set(RecognitionModels.model_fields)
# A webhook's signing key is at least this long: a short one can be guessed from signed bodies.
MIN_SECRET_CHARS = 16


class WebhookConfig(StrictModel):
    """A system that receives the events as signed JSON POSTs (docs/integrations.md), each retried with
    backoff until it is answered 2xx, in order."""

    url: AnyHttpUrl = Field(description="Where each event is POSTed (http:// or https://).")
    secret: SecretStr = Field(
        description="Key of the HMAC-SHA256 signature in X-Depotwatch-Signature; at least "
        f"{MIN_SECRET_CHARS} characters, placeholders refused (set it via the environment)."
    )
    kinds: list[EventKind] = Field(default_factory=list, description="The kinds sent; empty: every kind.")
    tracks: list[Identifier] = Field(
        default_factory=list,
        description="The tracks whose events are sent; empty: every track. Events of no track (an edge "
        "node's node_online, node_offline) are sent whatever this says.",
    )
    flow: Identifier = Field(PROD_FLOW, description="The flow whose events are sent.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="How long one POST may take.")
    first_retry_s: float = Field(1.0, gt=0, le=600, description="Wait before the first retry; doubles.")
    max_retry_s: float = Field(300.0, gt=0, le=3600, description="The longest wait between retries.")
    give_up_after_h: float = Field(
        72.0,
        gt=0,
        description="An event still refused this long after its first attempt is given up (counted, "
        "logged) so that one the receiver will never take does not hold up the rest for good.",
    )

    @field_validator("secret")
    @classmethod
    def _real_secret(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if value.lower() in PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder; set the real one (e.g. via the environment)")
        if len(value) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        return secret


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
    health: HealthConfig = Field(default_factory=HealthConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig)
    sparkplug: SparkplugConfig = Field(default_factory=SparkplugConfig)
    update_interval_s: float = Field(
        0.1,
        gt=0,
        le=10,
        description="How often the state is fused and saved; bounds how stale the API's state can be.",
    )
    watermark_s: float = Field(
        0.1,
        ge=0,
        le=5,
        description="Each update fuses what was captured up to this long before it, so detections up to "
        "this late in transit still count where they belong, and a replay gives exactly the live results; "
        "the state lags by this much.",
    )
    snapshot_interval_s: float = Field(60.0, gt=0, description="How often the whole state is kept.")
    visits_refresh_s: float = Field(
        60.0,
        gt=0,
        description="How often the station visits the Grafana panels read are brought up to date (the "
        "reports API computes its own at each request).",
    )
    retention_days: float = Field(
        90.0, gt=0, description="Observations, positions and snapshots older than this are deleted."
    )
    flows: dict[Identifier, FlowConfig] = Field(
        default_factory=lambda: {PROD_FLOW: FlowConfig()},
        description="The flows estimated here, each with its own estimator and stored state; must hold prod.",
    )
    webhooks: dict[Identifier, WebhookConfig] = Field(
        default_factory=dict,
        description="Receivers of the events by name (the name keeps each one's place in the events "
        "across restarts); none by default.",
    )

    @field_validator("database_url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        return check_database_url(url)

    @model_validator(mode="after")
    def _prod_flow(self) -> Self:
        if PROD_FLOW not in self.flows:
            raise ValueError(f"flows must include {PROD_FLOW!r}: the API, the map and Grafana default to it")
        if self.flows[PROD_FLOW].recognition is not None:
            raise ValueError(f"flows.{PROD_FLOW}.recognition: prod's models are the `recognition` section's")
        for name, hook in self.webhooks.items():
            if hook.flow not in self.flows:
                raise ValueError(f"webhooks.{name}.flow: {hook.flow!r} is not one of the flows")
        if self.sparkplug.enabled and self.ingest.shared_group:
            # Replicas would each be the primary host and the facility node, contradicting each other.
            raise ValueError(
                "sparkplug.enabled: not with ingest.shared_group (replicas); run Sparkplug from one cloud"
            )
        return self

    def reading_flows(self, flow: str) -> list[str]:
        """The flows whose models read a thumbnail published under `flow`, each publishing its reading
        under its own name: a prod thumbnail is read by prod's models and by those of every live flow
        with models of its own (dev beside prod on live data); any other flow's by that flow's models
        (its own or prod's)."""
        if flow != PROD_FLOW:
            return [flow]
        return [PROD_FLOW] + [
            name
            for name, own in self.flows.items()
            if name != PROD_FLOW and own.recognition is not None and own.clock == "wall"
        ]

    def counting_flows(self, flow: str) -> list[str]:
        """The flows that count a reading published under `flow` for their locomotives: a prod reading
        (of a live thumbnail) counts in every live flow without models of its own; any other only in
        the flow it was published under (read by that flow's models, or replayed into it)."""
        if flow != PROD_FLOW:
            return [flow] if flow in self.flows else []
        return [
            name
            for name, own in self.flows.items()
            if own.clock == "wall" and (name == PROD_FLOW or own.recognition is None)
        ]

    def recognition_models(self, flow: str) -> RecognitionModels:
        """The models and settings that recognise a flow's thumbnails: prod's, with the flow's own
        keys over them."""
        prod = RecognitionModels.model_validate(self.recognition.model_dump(include=MODEL_KEYS))
        own = self.flows[flow].recognition if flow in self.flows else None
        return prod if own is None else prod.model_copy(update=own.model_dump(exclude_none=True))


def load_cloud_config(path: Path) -> CloudConfig:
    """Read and validate the service's YAML; raises ConfigError naming each bad key (a TLS file that
    does not exist, or an LPE model folder without a readable envelope, among them)."""
    config = load_settings(CloudConfig, path)
    missing = config.broker.missing_files() + config.calibration.problems() + config.opcua.problems()
    if missing:
        raise ConfigError(str(path), missing)
    return config
