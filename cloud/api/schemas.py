"""What the API returns: public models, never the table rows themselves."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from cloud.identities import Identity


class LocoPublic(BaseModel):
    loco_id: str
    track_id: str
    start_m: float
    end_m: float
    start_seen: bool
    end_seen: bool
    station: str | None
    moving: bool
    first_seen: datetime
    last_seen: datetime
    confidence: float
    model: str | None = Field(None, description="Series, once the votes over its thumbnails settled it.")
    model_confidence: float = Field(0.0, description="Share of the votes behind `model`.")
    number: str | None = Field(None, description="Painted number, once settled.")
    number_confidence: float = Field(0.0, description="Share of the votes behind `number`.")
    thumbnail_url: str | None = Field(None, description="The thumbnail the number was read from.")

    def identified(self, identity: Identity | None) -> LocoPublic:
        """This locomotive with what the recognisers settled about it."""
        if identity is None:
            return self
        return self.model_copy(
            update={
                "model": identity.series,
                "model_confidence": identity.series_confidence,
                "number": identity.plate,
                "number_confidence": identity.plate_confidence,
                "thumbnail_url": f"/api/thumbnails/{identity.thumbnail_id}"
                if identity.thumbnail_id
                else None,
            }
        )


class StationPublic(BaseModel):
    station_id: str
    name: str
    start_m: float
    end_m: float
    occupied_by: list[str]


class TrackPublic(BaseModel):
    track_id: str
    name: str
    length_m: float
    locos: list[LocoPublic]
    unknown: list[tuple[float, float]]
    stations: list[StationPublic]


class StatePublic(BaseModel):
    at: datetime
    tracks: list[TrackPublic]


class PositionPublic(BaseModel):
    at: datetime
    track_id: str
    start_m: float
    end_m: float
    station: str | None


class EventPublic(BaseModel):
    id: int | None = None
    at: datetime
    kind: str
    track_id: str
    loco_id: str | None
    station: str | None
    camera_id: str | None
    detail: str


class EventPage(BaseModel):
    total: int
    items: list[EventPublic]


class NodePublic(BaseModel):
    node_id: str
    state: str = Field(description="online, offline (its death received) or silent (nothing heard lately).")
    bd_seq: int
    changed_at: datetime
    last_seen_at: datetime | None = Field(description="When its last birth, death or status arrived.")
    reason: str = Field(description="Why it is not online, where known.")
    software_version: str
    spool_depth: int
    cameras_online: int
    cameras_total: int


class CameraPublic(BaseModel):
    camera_id: str
    node_id: str
    state: str
    at: datetime
    fps_captured: float
    fps_inferred: float
    reconnects_last_hour: int
    reason: str


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    size: int


class CommandAccepted(BaseModel):
    command_id: str
    topic: str
