"""Every payload that crosses MQTT, as pydantic models: the one contract edge, cloud and tests share.

Each message carries `schema_version`, which the wire must state (code building a message gets it by
default); a consumer rejects versions it does not know rather than guessing. Times are timezone-aware,
within the years 2000-2100. Positions are metres along the camera's track, within ±100 km. Every
number is bounded and finite: what a database column or the estimator's arithmetic cannot take is
refused here, with the field at fault, before anything is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BeforeValidator, Field, ValidationInfo, model_validator

from shared.ids import Identifier
from shared.jpeg import jpeg_size
from shared.layout import Calibration, Interval
from shared.strict import StrictModel

SCHEMA_VERSION: Literal[1] = 1
PROD_FLOW = "prod"
DEV_FLOW = "dev"
# An extent may reach this far past the view it was seen in: calibration and pixel rounding.
VIEW_SLACK_M = 0.5
MAX_EXTENTS = 16
MAX_THUMBNAIL_BYTES = 512 * 1024
# A thumbnail's JPEG may declare at most this many pixels a side (a crop of a camera frame).
MAX_THUMBNAIL_SIDE_PX = 4096
# A snapshot is a whole camera frame at its full resolution, for commissioning: rare and large.
MAX_SNAPSHOT_BYTES = 8 * 1024 * 1024
MAX_SNAPSHOT_SIDE_PX = 8192
# The furthest any position may be from its track's origin: well beyond any depot, well within floats.
MAX_METRES = 100_000.0
# The era a timestamp must fall in; outside it, it is a broken clock or a forgery (and year 1 or 9999
# in a zone overflows when converted to UTC).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_UNSET: Any = None


def _stated_on_the_wire(value: object, info: ValidationInfo) -> object:
    if value is None:
        if info.mode == "json":
            raise ValueError("schema_version is required")
        return SCHEMA_VERSION
    return value


SchemaVersion = Annotated[Literal[1], BeforeValidator(_stated_on_the_wire)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
Metres = Annotated[float, Field(ge=-MAX_METRES, le=MAX_METRES)]
Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST)]
# A per-node sequence number: a database BIGINT.
Seq = Annotated[int, Field(ge=0, lt=2**63)]
# Counters and small numbers stored in INTEGER columns.
Count = Annotated[int, Field(ge=0, lt=2**31)]
# Measured rates, finite and not negative; no upper bound, as a producer must never fail on one (two
# frames read back to back from a file measure a million a second).
Fps = Annotated[float, Field(ge=0)]
Pixels = Annotated[int, Field(ge=0, le=65_535)]


def schema_version_field() -> Any:
    """`schema_version`: required on the wire, 1 by default when built in code."""
    return Field(_UNSET, validate_default=True, description="Contract version; the wire must state it.")


class ModelRef(StrictModel):
    """Which model produced a result, so results of two versions are never mixed up."""

    name: Identifier = Field(description="Model name, e.g. 'lpe'.")
    version: Identifier = Field(description="Model version, e.g. '1.0.0-int8'.")


class CameraState(StrEnum):
    """What a camera's watchdog concluded; `stalled`/`offline` mean its track segment is unseen."""

    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"
    DISABLED = "disabled"


class CameraHealth(StrictModel):
    """Camera health carried in every detection, so the cloud never mistakes unseen for empty."""

    state: CameraState
    fps: Fps = Field(description="Frames per second captured over the last few seconds.")


class TrackSpan(StrictModel):
    """An interval of track metres."""

    start_m: Metres
    end_m: Metres

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end_m < self.start_m:
            raise ValueError(f"end_m ({self.end_m}) is below start_m ({self.start_m})")
        return self


class LocoExtent(TrackSpan):
    """The part of one locomotive a camera sees; an end the camera cannot place is flagged, not guessed:
    one outside the view, or in the part of it where the image shows no locomotive side (towards the
    view's borders, where the image's edges cut the locomotive's side before the centreline)."""

    start_beyond_view: bool = Field(
        description="The lower end lies outside what the camera can place; start_m is that border."
    )
    end_beyond_view: bool = Field(
        description="The upper end lies outside what the camera can place; end_m is that border."
    )
    confidence: Confidence


class Detection(StrictModel):
    """What one camera's frame showed: the locomotive extents within its view."""

    schema_version: SchemaVersion = schema_version_field()
    observation_id: UUID
    node_id: Identifier
    camera_id: Identifier
    track_id: Identifier
    flow: Identifier = PROD_FLOW
    model: ModelRef
    captured_at: Instant
    seq: Seq = Field(description="Per-node sequence number, monotonic across restarts.")
    historical: bool = Field(False, description="Sent from the edge's backlog after an outage.")
    view: TrackSpan = Field(description="The interval of the track the camera saw.")
    extents: list[LocoExtent] = Field(max_length=MAX_EXTENTS)
    camera: CameraHealth

    @model_validator(mode="after")
    def _extents_within_view(self) -> Self:
        for i, ext in enumerate(self.extents):
            if ext.start_m < self.view.start_m - VIEW_SLACK_M or ext.end_m > self.view.end_m + VIEW_SLACK_M:
                raise ValueError(
                    f"extents.{i} [{ext.start_m}, {ext.end_m}] m lies outside the view "
                    f"[{self.view.start_m}, {self.view.end_m}] m"
                )
        return self


class ThumbnailMeta(StrictModel):
    """What a thumbnail shows and which observation it belongs to."""

    schema_version: SchemaVersion = schema_version_field()
    thumbnail_id: UUID
    observation_id: UUID
    node_id: Identifier
    camera_id: Identifier
    track_id: Identifier
    flow: Identifier = PROD_FLOW
    captured_at: Instant
    extent_index: int = Field(ge=0, lt=MAX_EXTENTS, description="Index into the detection's extents.")
    span: TrackSpan = Field(description="Track metres the crop covers.")
    bbox: tuple[Pixels, Pixels, Pixels, Pixels] = Field(
        description="Crop (x, y, width, height) in the full frame."
    )
    content_type: Literal["image/jpeg"] = "image/jpeg"
    historical: bool = False


class Thumbnail(StrictModel):
    """A JPEG crop and its metadata; travels in a binary frame (see `shared.codec`)."""

    meta: ThumbnailMeta
    jpeg: bytes = Field(min_length=4, max_length=MAX_THUMBNAIL_BYTES)

    @model_validator(mode="after")
    def _is_jpeg(self) -> Self:
        if not self.jpeg.startswith(b"\xff\xd8\xff"):
            raise ValueError("jpeg does not start with a JPEG SOI marker")
        width, height = jpeg_size(self.jpeg)  # the header only: the declared size, before any decoding
        if max(width, height) > MAX_THUMBNAIL_SIDE_PX:
            raise ValueError(f"jpeg declares {width}x{height} px, over {MAX_THUMBNAIL_SIDE_PX} px a side")
        return self


class SnapshotMeta(StrictModel):
    """What a snapshot shows: which camera, when, at what size, under which calibration."""

    schema_version: SchemaVersion = schema_version_field()
    snapshot_id: UUID
    node_id: Identifier
    camera_id: Identifier
    captured_at: Instant
    width: Pixels = Field(description="The frame's width in pixels, as the JPEG declares it.")
    height: Pixels = Field(description="The frame's height in pixels, as the JPEG declares it.")
    calibration_version: str = Field(
        max_length=64, description="The digest of the calibration in force when it was taken (Camera)."
    )
    requested_by: UUID | None = Field(None, description="The command that asked for it, if one did.")
    content_type: Literal["image/jpeg"] = "image/jpeg"


class Snapshot(StrictModel):
    """A camera's whole frame at full resolution, for calibrating it; a binary frame like a thumbnail's
    (see `shared.codec`)."""

    meta: SnapshotMeta
    jpeg: bytes = Field(min_length=4, max_length=MAX_SNAPSHOT_BYTES)

    @model_validator(mode="after")
    def _is_jpeg_of_its_size(self) -> Self:
        if not self.jpeg.startswith(b"\xff\xd8\xff"):
            raise ValueError("jpeg does not start with a JPEG SOI marker")
        width, height = jpeg_size(self.jpeg)
        if max(width, height) > MAX_SNAPSHOT_SIDE_PX:
            raise ValueError(f"jpeg declares {width}x{height} px, over {MAX_SNAPSHOT_SIDE_PX} px a side")
        if (width, height) != (self.meta.width, self.meta.height):
            raise ValueError(
                f"jpeg declares {width}x{height} px, the metadata {self.meta.width}x{self.meta.height}"
            )
        return self


class Recognition(StrictModel):
    """What the cloud's recognisers read from one thumbnail: the locomotive's series and number."""

    schema_version: SchemaVersion = schema_version_field()
    thumbnail_id: UUID
    node_id: Identifier
    camera_id: Identifier
    track_id: Identifier
    flow: Identifier = PROD_FLOW
    captured_at: Instant = Field(description="When the thumbnail's frame was captured.")
    span: TrackSpan = Field(description="Track metres the thumbnail shows.")
    series: str | None = Field(None, max_length=32, description="None: below the confidence threshold.")
    series_confidence: Confidence
    plate: str | None = Field(None, max_length=32, description="The number, after the plate rules.")
    plate_confidence: Confidence
    plate_raw: str = Field("", max_length=64, description="What the OCR read before the rules.")
    models: list[ModelRef] = Field(max_length=4)
    rejected: str = Field("", max_length=300, description="Why the thumbnail could not be used, if so.")


class NodeState(StrEnum):
    """Whether a node is up; `offline` is also the Last Will."""

    ONLINE = "online"
    OFFLINE = "offline"


class NodeLifecycle(StrictModel):
    """Birth or death of an edge node (retained). `bd_seq` pairs a death with the birth it ends."""

    schema_version: SchemaVersion = schema_version_field()
    node_id: Identifier
    state: NodeState
    bd_seq: Count = Field(description="Incremented at every connect; the Will carries the same value.")
    at: Instant
    software_version: str = Field("", max_length=64)
    cameras: list[Identifier] = Field(default_factory=list, description="Cameras the node serves (birth).")
    reason: str = Field("", max_length=200, description="Why the node went offline, where known.")


def death_applies(current_birth_bd_seq: int | None, death: NodeLifecycle) -> bool:
    """Whether a death message ends the node's current session; a late Will of an older one does not."""
    return death.state is NodeState.OFFLINE and (
        current_birth_bd_seq is None or death.bd_seq == current_birth_bd_seq
    )


class NodeStatus(StrictModel):
    """Periodic health of an edge node (retained)."""

    schema_version: SchemaVersion = schema_version_field()
    node_id: Identifier
    at: Instant
    uptime_s: float = Field(ge=0, le=100 * 365 * 86400)
    spool_depth: Count = Field(description="Messages waiting in the store-and-forward spool.")
    spool_dropped_total: Count = Field(description="Messages the full spool has dropped since start.")
    cameras_online: Count
    cameras_total: Count


class CameraStatus(StrictModel):
    """Health of one camera as its watchdog sees it (retained)."""

    schema_version: SchemaVersion = schema_version_field()
    node_id: Identifier
    camera_id: Identifier
    at: Instant
    state: CameraState
    fps_captured: Fps
    fps_inferred: Fps
    frames_dropped_total: Seq
    reconnects_last_hour: Count
    last_frame_at: Instant | None = None
    reason: str = Field("", max_length=200, description="Why the camera is not online, where known.")


class Rebirth(StrictModel):
    """Ask the node to republish its birth and all retained status."""

    action: Literal["rebirth"] = "rebirth"


class SetSampleRate(StrictModel):
    """Change how many frames per second a camera feeds the estimator."""

    action: Literal["set_sample_rate"] = "set_sample_rate"
    camera_id: Identifier
    fps: float = Field(gt=0, le=30)


class SetCameraEnabled(StrictModel):
    """Switch a camera on or off; a disabled camera reports `disabled`, its segment unseen."""

    action: Literal["set_camera_enabled"] = "set_camera_enabled"
    camera_id: Identifier
    enabled: bool


class RequestThumbnail(StrictModel):
    """Ask for a fresh thumbnail of the locomotive a camera sees over a stretch of its track (the
    cloud asks while a locomotive's series or number is not settled), sooner than the node's refresh;
    the node's minimum interval per locomotive still holds."""

    action: Literal["request_thumbnail"] = "request_thumbnail"
    camera_id: Identifier
    span: TrackSpan


class RequestSnapshot(StrictModel):
    """Ask for a camera's current frame at full resolution, published on its snapshot topic."""

    action: Literal["request_snapshot"] = "request_snapshot"
    camera_id: Identifier


class SetCalibration(StrictModel):
    """Make surveyed points a camera's calibration and `view` its view. The points are fitted and
    checked on decoding as the layout loader does; the node writes them into its layout file (the
    previous file kept) and rectifies the camera's next frames with them, without a restart."""

    action: Literal["set_calibration"] = "set_calibration"
    camera_id: Identifier
    calibration: Calibration
    view: Interval


Command = Annotated[
    Rebirth | SetSampleRate | SetCameraEnabled | RequestThumbnail | RequestSnapshot | SetCalibration,
    Field(discriminator="action"),
]


class CommandRequest(StrictModel):
    """A command sent by the cloud to one node."""

    schema_version: SchemaVersion = schema_version_field()
    command_id: UUID
    issued_at: Instant
    issued_by: str = Field("", max_length=100, description="Who asked, for the audit trail.")
    command: Command


class CommandAck(StrictModel):
    """A node's answer to a command: accepted and applied, or rejected with the reason."""

    schema_version: SchemaVersion = schema_version_field()
    command_id: UUID | None = Field(description="None when the request was too malformed to carry an id.")
    node_id: Identifier
    at: Instant
    accepted: bool
    reason: str = Field("", max_length=500)


JsonMessage = (
    Detection | NodeLifecycle | NodeStatus | CameraStatus | CommandRequest | CommandAck | Recognition
)
Message = JsonMessage | Thumbnail | Snapshot
