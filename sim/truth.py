"""Ground truth the simulator knows and the estimators must recover: what each camera sees of each
locomotive (in track metres, ends beyond the view flagged) and the state of the whole facility."""

from __future__ import annotations

from dataclasses import replace

from shared.layout import Facility
from shared.strict import StrictModel
from sim.neighbours import Neighbour
from sim.world import LocoState, World


class TruthExtent(StrictModel):
    """The part of one locomotive inside a camera's view."""

    plate: str
    series: str
    start_m: float
    end_m: float
    start_beyond_view: bool
    end_beyond_view: bool
    moving: bool


class TruthPlate(StrictModel):
    """Where a painted number appears in a frame: corners clockwise from top-left, in pixels."""

    plate: str
    quad: list[tuple[float, float]]


class TruthLoco(StrictModel):
    """One locomotive in the facility."""

    plate: str
    series: str
    track_id: str
    start_m: float
    end_m: float
    station: str | None
    moving: bool


def visible_extents(facility: Facility, camera_id: str, locos: list[LocoState]) -> list[TruthExtent]:
    """What of each locomotive on the camera's track lies within its view, by increasing metres."""
    cam = facility.cameras[camera_id]
    lo, hi = cam.view.start_m, cam.view.end_m
    out = []
    for state in locos:
        if state.track_id != cam.track or state.end_m <= lo or state.start_m >= hi:
            continue
        out.append(
            TruthExtent(
                plate=state.loco.plate,
                series=state.loco.series.name,
                start_m=max(state.start_m, lo),
                end_m=min(state.end_m, hi),
                start_beyond_view=state.start_m < lo,
                end_beyond_view=state.end_m > hi,
                moving=state.moving,
            )
        )
    return sorted(out, key=lambda e: e.start_m)


def neighbour_extents(
    facility: Facility, camera_id: str, neighbours: list[Neighbour], world: World, t: float
) -> list[TruthExtent]:
    """What of the neighbouring tracks' locomotives lies along the camera's view, in own-track metres:
    what the LPE must not report as its track's."""
    shifted = [n.to_own(state) for n in neighbours for state in world.locos_at(t, n.track_id)]
    own_track = facility.cameras[camera_id].track
    return visible_extents(facility, camera_id, [replace(s, track_id=own_track) for s in shifted])


def facility_truth(facility: Facility, locos: list[LocoState]) -> list[TruthLoco]:
    """Every locomotive in the facility with the station it stands at."""
    return [
        TruthLoco(
            plate=s.loco.plate,
            series=s.loco.series.name,
            track_id=s.track_id,
            start_m=s.start_m,
            end_m=s.end_m,
            station=facility.station_at(s.track_id, s.start_m, s.end_m),
            moving=s.moving,
        )
        for s in locos
    ]
