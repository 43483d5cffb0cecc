"""The mounting envelope of a position-estimator model: the camera mountings it has been measured to
work for, declared in `envelope.yaml` beside its IR files (and in its model card). A camera mounted
outside it is named with the quantity out of range by `depotwatch layout check`, `edge check` and the
cloud's calibration workbench: its detections are not what the model card's figures promise."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from shared.layout import Facility
from shared.mounting import Mounting, mounting_of
from shared.strict import StrictModel
from shared.yaml_config import load_model

ENVELOPE_FILE = "envelope.yaml"


class Range(StrictModel):
    """A closed interval."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def holds(self, value: float) -> bool:
        """Whether `value` lies in the interval."""
        return self.low <= value <= self.high


class Envelope(StrictModel):
    """The mountings a model has been measured on (see its model card)."""

    measured_on: str = Field(min_length=1, description="What the figures behind this envelope came from.")
    height_m: Range = Field(description="Camera height above the rail head.")
    lateral_m: Range = Field(description="Distance from the track's centreline, either side given below.")
    sides: list[Literal["left", "right"]] = Field(
        min_length=1, description="Side of the track facing increasing metres: right is a negative offset."
    )
    hfov_deg: Range = Field(description="Horizontal field of view of the lens.")
    min_view_m: float = Field(gt=0, description="Shortest stretch of track in view (the aim sets it).")
    max_roll_deg: float = Field(ge=0, description="Largest roll about the optical axis, either way.")
    notes: str = Field("", description="What was measured outside it, for the model card.")

    def outside(self, mounting: Mounting) -> list[str]:
        """What of `mounting` lies outside the envelope, one phrase each; empty when it all lies in."""
        found = []
        if not self.height_m.holds(mounting.height_m):
            found.append(f"height {mounting.height_m:g} m (measured {_span(self.height_m, 'm')})")
        if not self.lateral_m.holds(abs(mounting.lateral_m)):
            found.append(
                f"lateral distance {abs(mounting.lateral_m):g} m (measured {_span(self.lateral_m, 'm')})"
            )
        side = "left" if mounting.lateral_m > 0 else "right"
        if side not in self.sides:
            found.append(f"{side} of the track (measured on the {' and '.join(self.sides)} only)")
        if not self.hfov_deg.holds(mounting.hfov_deg):
            found.append(f"field of view {mounting.hfov_deg:g}° (measured {_span(self.hfov_deg, '°')})")
        if mounting.view_m < self.min_view_m:
            found.append(f"view of {mounting.view_m:g} m of track (measured from {self.min_view_m:g} m)")
        if abs(mounting.roll_deg) > self.max_roll_deg:
            found.append(f"roll {mounting.roll_deg:g}° (measured within ±{self.max_roll_deg:g}°)")
        return found


def _span(r: Range, unit: str) -> str:
    return f"{r.low:g}–{r.high:g} {unit}".replace(" °", "°")


def load_envelope(model_dir: Path) -> Envelope | None:
    """The envelope a model folder declares; None when it declares none. Raises ConfigError when the
    file is malformed."""
    path = model_dir / ENVELOPE_FILE
    return load_model(Envelope, path) if path.is_file() else None


def mounting_warnings(facility: Facility, envelope: Envelope, cameras: list[str] | None = None) -> list[str]:
    """A line per camera (all of the layout's, or `cameras`) mounted outside `envelope`, naming the
    camera and each quantity out of range."""
    warnings = []
    for cid in sorted(cameras if cameras is not None else facility.cameras):
        warning = mounting_warning(cid, mounting_of(facility.cameras[cid]), envelope)
        if warning is not None:
            warnings.append(warning)
    return warnings


def mounting_warning(camera_id: str, mounting: Mounting, envelope: Envelope) -> str | None:
    """The line naming a camera mounted outside `envelope` and each quantity out of range; None when
    its mounting lies inside."""
    outside = envelope.outside(mounting)
    if not outside:
        return None
    return f"camera {camera_id}: mounted outside the LPE's envelope: {'; '.join(outside)}"
