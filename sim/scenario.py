"""What the simulator plays: traffic, conditions and camera faults, as one validated config."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import AwareDatetime, Field, model_validator

from shared.ids import Identifier
from shared.strict import StrictModel
from shared.yaml_config import load_model
from sim.fleet import SERIES


class Lighting(StrEnum):
    """`auto` follows the clock: daylight from 07:00 to 19:00, shop lamps at night."""

    AUTO = "auto"
    DAY = "day"
    NIGHT = "night"


class FaultKind(StrEnum):
    """Ways a camera fails: the picture freezes, goes black, or the stream drops."""

    FROZEN = "frozen"
    BLACK = "black"
    DROPOUT = "dropout"


class NumberPaint(StrEnum):
    """How depots paint a locomotive's number (drawn by sim/paint.py)."""

    CLASSIC = "classic"  # one clean line, as the simulator always drew it
    STENCIL = "stencil"  # letters cut as stencils: set apart, with bridges across their strokes
    GROUPS = "groups"  # series and number apart, the dash dropped (two lines on the cab front)
    SMALL_PLATE = "small_plate"  # a small plate under the cab window and on the front
    FADED = "faded"  # faded, worn lettering with soot and rust over it
    VARIED = "varied"  # each locomotive one of the above, by a stable hash of its plate


Range = tuple[float, float]


class Conditions(StrictModel):
    """Image conditions; ranges are drawn per frame, deterministically by seed."""

    lighting: Lighting = Field(Lighting.AUTO, description="Force day or night, or follow the clock.")
    noise_sigma: Range = Field((2.0, 5.0), description="Sensor noise σ in grey levels, day (night doubles).")
    blur_sigma_px: Range = Field((0.0, 0.0), description="Defocus blur σ in pixels.")
    motion_blur_px: Range = Field((0.0, 0.0), description="Camera-shake blur length in pixels.")
    workers_per_camera: float = Field(0.3, ge=0, le=5, description="Mean number of workers in each view.")
    timestamp_overlay: bool = Field(True, description="Burn the camera id and time into the frame.")
    varied_appearance: bool = Field(
        False,
        description="Draw each camera's floor, walls, pit, rails, markings and lamps from the range depots "
        "show (training data) instead of the one default look.",
    )
    number_paint: NumberPaint = Field(
        NumberPaint.CLASSIC,
        description="How locomotive numbers are painted: classic, stencil, groups, small_plate, faded, "
        "or varied (each locomotive one of them, stably by its plate).",
    )
    lamp_glare: bool = Field(
        False,
        description="At night, lamps facing the camera (headlights, buffer lamps, work lamps hung beside "
        "cab numbers) bloom and partly wash out the numbers near them.",
    )

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        for name in ("noise_sigma", "blur_sigma_px", "motion_blur_px"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got [{lo}, {hi}]")
        return self


class FaultSpec(StrictModel):
    """A scheduled camera fault."""

    camera: Identifier
    kind: FaultKind
    start_s: float = Field(ge=0, description="Simulation seconds after the scenario start.")
    duration_s: float = Field(gt=0)


class Scenario(StrictModel):
    """Traffic and conditions of one simulated run; the same seed always plays the same day."""

    seed: int = Field(0, ge=0, description="Seed of every random choice.")
    start: AwareDatetime = Field(
        datetime(2026, 3, 2, 6, 0, tzinfo=UTC), description="Wall time of simulation second 0."
    )
    horizon_h: float = Field(72.0, gt=0, le=24 * 60, description="Hours of traffic planned ahead.")
    fleet_size: int = Field(40, ge=1, le=2000, description="Locomotives that may visit the depot.")
    series_mix: dict[str, float] = Field(
        default_factory=lambda: dict.fromkeys(SERIES, 1.0), description="Relative weight of each series."
    )
    initial_occupancy: float = Field(
        0.6, ge=0, le=1, description="Chance a station holds a loco at second 0."
    )
    arrivals_per_track_hour: float = Field(1.5, ge=0, le=60, description="Mean arrivals per track per hour.")
    dwell_minutes: Range = Field((60.0, 300.0), description="How long a loco stands at a station.")
    shunt_probability: float = Field(0.3, ge=0, le=1, description="Chance a loco shunts instead of leaving.")
    speed_mps: float = Field(1.2, gt=0, le=5, description="Shunting speed in the shop.")
    conditions: Conditions = Field(default_factory=Conditions)
    faults: list[FaultSpec] = Field(default_factory=list, description="Scheduled camera faults.")
    random_faults_per_camera_hour: float = Field(0.0, ge=0, le=60, description="Unscheduled faults.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        unknown = sorted(set(self.series_mix) - set(SERIES))
        if unknown:
            raise ValueError(f"series_mix names unknown series {unknown} (known: {sorted(SERIES)})")
        if not any(w > 0 for w in self.series_mix.values()):
            raise ValueError("series_mix needs at least one positive weight")
        lo, hi = self.dwell_minutes
        if not 0 < lo <= hi:
            raise ValueError(f"dwell_minutes must be [low, high] with 0 < low <= high, got [{lo}, {hi}]")
        return self


def load_scenario(path: str | Path) -> Scenario:
    """Load a scenario YAML file; raises ConfigError naming each bad key."""
    return load_model(Scenario, path)
