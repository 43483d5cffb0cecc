"""The facility as it was at a past moment, recomputed (pure logic).

A snapshot says which locomotives were there shortly before; the position history moves each one to
where the live estimator last had it; then the cameras' observations of the moment (every observation
stored, late backlog data included, placed by its capture time) are fused by a fresh estimator seeded
with those locomotives. So the answer keeps the ids operators saw live, and reflects data that only
arrived later from an edge's backlog.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cloud.fse import FacilityStateEstimator, FseSettings, Loco, Observation, TrackState
from shared.layout import Facility


@dataclass(frozen=True)
class PastInputs:
    """What the database knows around a past moment."""

    at: datetime
    locos: list[Loco]  # there at the snapshot, or arrived since; each at its last position before `at`
    observations: list[Observation]  # captured by `at`, within the estimator's max_age of it


def moved_to(loco: Loco, positions: Sequence[tuple[float, float, str | None]]) -> Loco:
    """The locomotive at the last of its recorded positions (start, end, station), if any."""
    if not positions:
        return loco
    start_m, end_m, station = positions[-1]
    return loco.model_copy(update={"start_m": start_m, "end_m": end_m, "station": station})


def state_at(facility: Facility, past: PastInputs, settings: FseSettings | None = None) -> list[TrackState]:
    """The facility at `past.at`, track by track, as an estimator with `settings` has it."""
    # A locomotive the live estimator never tracked (seen only in late backlog data) gets no real id.
    unrecorded = itertools.count(1)
    estimator = FacilityStateEstimator(facility, lambda: f"unrecorded-{next(unrecorded)}", settings)
    window = estimator.settings.max_age
    estimator.restore(past.locos)
    for observation in sorted(past.observations, key=lambda o: o.at):
        if observation.camera_id in facility.cameras and past.at - window < observation.at <= past.at:
            estimator.observe(observation)
    estimator.update(past.at)
    return estimator.state()
