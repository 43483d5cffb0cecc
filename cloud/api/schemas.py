"""What the API returns: every response model, never the table rows themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud.db.models import CameraSnapshotBase
from cloud.fse import FseSettings
from cloud.identities import Identity
from cloud.locomotive import LocoBase


class LocoPublic(LocoBase):
    """A locomotive where the estimator has it, with its series and number once recognised."""

    model: str | None = Field(None, description="Series, once the votes over its thumbnails settled it.")
    model_confidence: float = Field(0.0, description="Share of the votes behind `model`.")
    number: str | None = Field(None, description="Painted number, once settled.")
    number_confidence: float = Field(0.0, description="Share of the votes behind `number`.")
    thumbnail_url: str | None = Field(None, description="The thumbnail the number was read from.")
    number_also_on: list[str] = Field(
        default_factory=list,
        description="Other locomotives present with the same settled number: an identity conflict "
        "(an `identity_conflict` event told it), until the votes or a departure resolve it.",
    )

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
    """A repair station and the locomotives standing at it."""

    station_id: str
    name: str
    start_m: float
    end_m: float
    occupied_by: list[str]


class TrackPublic(BaseModel):
    """A track: its locomotives, the stretches no camera can see now, its stations."""

    track_id: str
    name: str
    length_m: float
    locos: list[LocoPublic]
    unknown: list[tuple[float, float]]
    stations: list[StationPublic]


class StatePublic(BaseModel):
    """The facility at one moment, track by track."""

    at: datetime
    tracks: list[TrackPublic]


class PositionPublic(BaseModel):
    """Where a locomotive was at one moment."""

    at: datetime
    track_id: str
    start_m: float
    end_m: float
    station: str | None


class EventPublic(BaseModel):
    """A change the estimator reported (`id` once stored)."""

    id: int | None = None
    at: datetime
    kind: str
    track_id: str
    loco_id: str | None
    station: str | None
    camera_id: str | None
    node_id: str | None = Field(None, description="The edge node, for node_online and node_offline.")
    detail: str


class EventPage(BaseModel):
    """One page of events, and how many match in all."""

    total: int
    items: list[EventPublic]


class StationFiguresPublic(BaseModel):
    """How busy a station was over the period."""

    station_id: str
    name: str
    track_id: str
    occupied_share: float = Field(description="Share of the period any locomotive stood at it (0–1).")
    visits: int = Field(description="Visits that overlap the period.")
    mean_dwell_s: float | None = Field(description="Their mean dwell (a visit going on: until `to`).")
    max_dwell_s: float | None = Field(description="Their longest dwell.")


class StationReport(BaseModel):
    """Per station over [from, to)."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    stations: list[StationFiguresPublic]


class VisitPublic(BaseModel):
    """A locomotive's stay at a station."""

    station: str
    track_id: str
    loco_id: str
    series: str | None = Field(description="Its series, once the votes settled it.")
    number: str | None = Field(description="Its number, once settled.")
    arrived: datetime
    left: datetime | None = Field(description="When it left; null while it is still there at `to`.")
    dwell_s: float = Field(description="How long it stood there (until `to` while it is still there).")


class DwellReport(BaseModel):
    """Each visit to a station that overlaps [from, to), oldest first."""

    model_config = ConfigDict(populate_by_name=True)

    start: datetime = Field(alias="from")
    end: datetime = Field(alias="to")
    visits: list[VisitPublic]


class WebhookPublic(BaseModel):
    """A webhook's deliveries since the service started, and where it stands."""

    name: str
    url: str = Field(description="Where it POSTs (without any user name or password).")
    flow: str
    kinds: list[str] = Field(description="The kinds it is sent; empty: every kind.")
    tracks: list[str] = Field(description="The tracks whose events it is sent; empty: every track.")
    delivered: int = Field(description="Events its receiver took (answered 2xx).")
    failed_attempts: int = Field(description="POSTs refused, unanswered or not reaching the receiver.")
    given_up: int = Field(description="Events given up after `give_up_after_h` of failures.")
    cursor: int | None = Field(description="The id of the last event it is done with.")
    retrying: int | None = Field(description="The id of the event being retried, if one is.")
    waiting: int | None = Field(description="The flow's events stored after its cursor.")
    last_error: str
    last_error_at: datetime | None
    last_delivered_at: datetime | None


class NodePublic(BaseModel):
    """An edge node's latest lifecycle and status."""

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
    """A camera's latest status."""

    camera_id: str
    node_id: str
    state: str
    at: datetime
    fps_captured: float
    fps_inferred: float
    reconnects_last_hour: int
    reason: str


class DeadLetterPublic(BaseModel):
    """A message that could not be used, with the reason (its payload is not shown)."""

    id: int
    received_at: datetime
    topic: str
    reason: str
    size: int


class CommandAccepted(BaseModel):
    """A command published to a node; the node answers on its ack topic."""

    command_id: str
    topic: str


class FlowPublic(BaseModel):
    """A data flow the cloud estimates, with its estimator's settings."""

    flow: str
    clock: str
    update_interval_s: float
    locomotives: int
    fse: FseSettings


class ComparisonPublic(BaseModel):
    """How two flows' states compare over a time range (see `GET /api/flows/compare`)."""

    a: str
    b: str
    since: datetime
    until: datetime
    step_s: float
    instants: int
    occupancy_agreement: float | None
    compared_track_m: float
    end_error_median_m: float | None
    end_error_p95_m: float | None
    matched: int
    only_a: int
    only_b: int
    id_switches: int
    numbers_compared: int
    number_differences: int
    series_compared: int
    series_differences: int


class PointResidualPublic(BaseModel):
    """How far a fit puts one surveyed point from where it was surveyed."""

    pixels: float = Field(description="From the surveyed pixel to the fit's pixel for its track position.")
    floor_cm: float = Field(description="From the surveyed track position to the fit's, on the floor.")
    left_out_pixels: float | None = Field(
        description="How far a fit of the other points misses this one (null: the others cannot be fitted)."
    )


class MountingPublic(BaseModel):
    """How a camera is mounted, as its calibration and lens imply (shared.mounting)."""

    height_m: float = Field(description="Above the rail head.")
    lateral_m: float = Field(
        description="From the centreline, positive to the left facing increasing metres."
    )
    side: Literal["left", "right"] = Field(description="Side of the track, facing increasing metres.")
    hfov_deg: float = Field(description="The lens's horizontal field of view.")
    view_m: float = Field(description="Length of the stretch of track in view.")
    roll_deg: float = Field(description="Rotation about the optical axis; 0 for a level camera.")


class CalibrationFitPublic(BaseModel):
    """The layout loader's verdict on a set of surveyed points, and each point's residual."""

    accepted: bool
    problems: list[str] = Field(description="The loader's reasons for refusing; empty when accepted.")
    outlier: int | None = Field(description="The point the others disagree with: re-survey it.")
    residuals: list[PointResidualPublic]
    track_to_image: list[list[float]] | None = Field(description="The fitted 3×3 homography, when accepted.")
    view: tuple[float, float] | None = Field(
        None, description="Track metres of the camera's track inside its image, for a camera's fit."
    )
    mounting: MountingPublic | None = Field(
        None, description="How the fit says the camera is mounted, when it is accepted with a view."
    )
    mounting_warnings: list[str] = Field(
        default_factory=list,
        description="What of the mounting lies outside the LPE's envelope, as `depotwatch layout check` "
        "words it.",
    )


class CalibrationSavedPublic(CalibrationFitPublic):
    """A fit saved as a camera's calibration, and the command that gives it to the camera's node."""

    node_id: str = Field(description="The edge node that captures the camera.")
    command_id: str | None = Field(
        description="The SetCalibration command sent to the node, which acknowledges it on its ack "
        "topic; None when the broker was not reachable (see `not_sent`)."
    )
    not_sent: str | None = Field(
        None,
        description="Why no command went to the node: the layout is saved all the same, and the node "
        "keeps its old calibration until this one is saved again with the broker reachable.",
    )


class SnapshotPublic(CameraSnapshotBase):
    """A camera's latest snapshot without its JPEG (`GET /api/cameras/{camera}/snapshot` serves that)."""

    size_bytes: int = Field(description="The JPEG's size in bytes.")
