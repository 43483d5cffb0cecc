"""Database tables of the cloud service (SQLModel): SQLite by default, PostgreSQL in production.
The schema is created and upgraded only by the Alembic migrations in cloud/migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from cloud.db.types import UtcDateTime
from cloud.locomotive import LocoKept


def _utc(**kwargs: Any) -> Any:
    return Field(sa_column=Column(UtcDateTime(), **kwargs))


class ObservationRow(SQLModel, table=True):
    """One detection as received: the time series history is rebuilt from."""

    __tablename__ = "observations"
    __table_args__ = (
        UniqueConstraint("flow", "node_id", "seq", name="uq_observations_flow_node_seq"),
        Index("ix_observations_camera_time", "camera_id", "captured_at"),
        Index("ix_observations_flow_time", "flow", "captured_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    observation_id: str = Field(max_length=36)
    node_id: str = Field(max_length=64)
    camera_id: str = Field(max_length=64)
    track_id: str = Field(max_length=64)
    flow: str = Field(max_length=64)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    model: str = Field(max_length=140)
    captured_at: datetime = _utc(nullable=False)
    received_at: datetime = _utc(nullable=False)
    historical: bool = False
    camera_state: str = Field(max_length=16)
    view_start_m: float
    view_end_m: float
    extents: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class DeadLetterRow(SQLModel, table=True):
    """A message that could not be used, kept with the reason."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_time", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = _utc(nullable=False)
    topic: str = Field(max_length=512)
    reason: str = Field(max_length=1000)
    size: int
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class NodeRow(SQLModel, table=True):
    """Each edge node's latest lifecycle and status. `state` is online, offline (its death was
    received) or silent (online, but nothing heard from it for a while)."""

    __tablename__ = "nodes"

    node_id: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)
    bd_seq: int
    changed_at: datetime = _utc(nullable=False)
    born_at: datetime | None = _utc(nullable=True)
    last_seen_at: datetime | None = _utc(nullable=True)
    reason: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    software_version: str = Field(default="", max_length=64)
    spool_depth: int = 0
    cameras_online: int = 0
    cameras_total: int = 0


class CameraRow(SQLModel, table=True):
    """Each camera's latest status."""

    __tablename__ = "cameras"

    camera_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(max_length=64)
    state: str = Field(max_length=16)
    at: datetime = _utc(nullable=False)
    fps_captured: float = 0.0
    fps_inferred: float = 0.0
    reconnects_last_hour: int = 0
    reason: str = Field(default="", max_length=200)


class LocomotiveRow(LocoKept, table=True):
    """The estimator's locomotives, kept so that the state survives a restart: a `cloud.fse.Loco` with
    its flow, whether it is still there, and where it last stood in two columns."""

    __tablename__ = "locomotives"
    __table_args__ = (
        Index("ix_locomotives_present", "present", "track_id"),
        Index("ix_locomotives_flow_present", "flow", "present", "track_id"),
    )

    flow: str = Field(default="prod", max_length=64, sa_column_kwargs={"server_default": "prod"})
    present: bool = True
    settled_start_m: float
    settled_end_m: float


class PositionRow(SQLModel, table=True):
    """Where a locomotive was: written whenever its extent changes."""

    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_loco_time", "loco_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    loco_id: str = Field(max_length=32)
    flow: str = Field(default="prod", max_length=64, sa_column_kwargs={"server_default": "prod"})
    at: datetime = _utc(nullable=False)
    track_id: str = Field(max_length=64)
    start_m: float
    end_m: float
    station: str | None = Field(default=None, max_length=64)


class EventRow(SQLModel, table=True):
    """What the estimator reported, and what the edge nodes' lifecycle told (an event of no track: its
    `track_id` is empty, its `node_id` set)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_time", "at"),
        Index("ix_events_track_time", "track_id", "at"),
        Index("ix_events_flow_time", "flow", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(default="prod", max_length=64, sa_column_kwargs={"server_default": "prod"})
    at: datetime = _utc(nullable=False)
    kind: str = Field(max_length=32)
    track_id: str = Field(max_length=64)
    loco_id: str | None = Field(default=None, max_length=32)
    station: str | None = Field(default=None, max_length=64)
    camera_id: str | None = Field(default=None, max_length=64)
    node_id: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", max_length=300)


class WebhookCursorRow(SQLModel, table=True):
    """How far each webhook has delivered its flow's events: the id of the last one it is done with."""

    __tablename__ = "webhook_cursors"

    name: str = Field(primary_key=True, max_length=64)
    event_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = _utc(nullable=False)


class StationVisitRow(SQLModel, table=True):
    """A visit to a station as the reports API has it (cloud.reports, backlog replayed), kept by the
    cloud for the Grafana panels; `left` is null while the locomotive is still there."""

    __tablename__ = "station_visits"
    __table_args__ = (Index("ix_station_visits_flow_arrived", "flow", "arrived"),)

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(max_length=64)
    station: str = Field(max_length=64)
    track_id: str = Field(max_length=64)
    loco_id: str = Field(max_length=64)
    arrived: datetime = _utc(nullable=False)
    left: datetime | None = _utc(nullable=True)


class CounterRow(SQLModel, table=True):
    """A counter that must survive restarts (the Sparkplug facility node's birth sequence)."""

    __tablename__ = "counters"

    name: str = Field(primary_key=True, max_length=64)
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class SnapshotRow(SQLModel, table=True):
    """The whole facility state at one moment, for "what was where at time t"."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_time", "at"), Index("ix_snapshots_flow_time", "flow", "at"))

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(default="prod", max_length=64, sa_column_kwargs={"server_default": "prod"})
    at: datetime = _utc(nullable=False)
    state: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An API key: only its SHA-256 is stored; the prefix finds it."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    role: str = Field(max_length=16)
    name: str = Field(default="", max_length=100)
    created_at: datetime = _utc(nullable=False)
    revoked: bool = False


class IdentityRow(SQLModel, table=True):
    """Who a locomotive is, as the votes over its thumbnails settled it."""

    __tablename__ = "identities"

    loco_id: str = Field(primary_key=True, max_length=32)
    series: str | None = Field(default=None, max_length=32)
    series_confidence: float = 0.0
    series_weight: float = 0.0
    plate: str | None = Field(default=None, max_length=32)
    plate_confidence: float = 0.0
    plate_weight: float = 0.0
    thumbnail_id: str | None = Field(default=None, max_length=36)
    updated_at: datetime = _utc(nullable=False)
    # The whole tally (every value's weight, the conflicts told), so a restart resumes it exactly.
    tallies: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class VoteRow(SQLModel, table=True):
    """A recognition counted for a locomotive: at most once per flow and thumbnail, however often it
    is delivered."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("flow", "thumbnail_id", name="uq_votes_flow_thumbnail"),
        Index("ix_votes_time", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(max_length=64)
    thumbnail_id: str = Field(max_length=36)
    loco_id: str = Field(max_length=32)
    at: datetime = _utc(nullable=False)
    series: str | None = Field(default=None, max_length=32)
    series_confidence: float = 0.0
    plate: str | None = Field(default=None, max_length=32)
    plate_confidence: float = 0.0


class ThumbnailRow(SQLModel, table=True):
    """A thumbnail an edge node sent, kept for the API for a retention period."""

    __tablename__ = "thumbnails"
    __table_args__ = (Index("ix_thumbnails_time", "captured_at"),)

    thumbnail_id: str = Field(primary_key=True, max_length=36)
    captured_at: datetime = _utc(nullable=False)
    node_id: str = Field(max_length=64)
    camera_id: str = Field(max_length=64)
    track_id: str = Field(max_length=64)
    flow: str = Field(max_length=64)
    span_start_m: float
    span_end_m: float
    jpeg: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CameraSnapshotBase(SQLModel):
    """What is known of a camera's latest snapshot, its fields declared once for the table row and the
    API's `SnapshotPublic`. No table of its own."""

    camera_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(max_length=64, description="The edge node that sent it.")
    snapshot_id: str = Field(max_length=36)
    # A column type, not a Column (`_utc`), as the table row inherits these fields.
    captured_at: datetime = Field(sa_type=UtcDateTime, nullable=False, description="When the frame was read.")
    width: int = Field(description="The frame's width in pixels.")
    height: int = Field(description="The frame's height in pixels.")
    calibration_version: str = Field(
        max_length=64, description="The camera's calibration on its node when the frame was taken."
    )
    requested_by: str | None = Field(
        default=None, max_length=36, description="The command that asked for it, if one did."
    )
    received_at: datetime = Field(sa_type=UtcDateTime, nullable=False)


class CameraSnapshotRow(CameraSnapshotBase, table=True):
    """Each camera's latest snapshot (by capture time), its JPEG included."""

    __tablename__ = "camera_snapshots"

    jpeg: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
