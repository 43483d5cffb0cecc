"""Ground truth the simulator knows and the estimators must recover: what each camera sees of each
locomotive (in track metres, ends beyond the view flagged) and the state of the whole facility."""

from __future__ import annotations

from dataclasses import replace

from shared.layout import Facility
from shared.seen import seen_stretch
from shared.strict import StrictModel
from sim.neighbours import Neighbour
from sim.world import LocoState, World


class TruthExtent(StrictModel):
    """The part of one locomotive inside a camera's view. An end the camera cannot place (outside the
    view, or in the part of it where the image shows no locomotive side: shared.strip.SEEN_SHARE) is
    beyond view, and the extent ends at the border of what it sees."""

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
    """What of each locomotive on the camera's track the camera can see, by increasing metres: the
    locomotives that reach into the seen part of its view."""
    cam = facility.cameras[camera_id]
    seen_lo, seen_hi = seen_stretch(cam)
    out = []
    for state in locos:
        if state.track_id != cam.track or state.end_m <= seen_lo or state.start_m >= seen_hi:
            continue
        start_beyond, end_beyond = state.start_m < seen_lo, state.end_m > seen_hi
        out.append(
            TruthExtent(
                plate=state.loco.plate,
                series=state.loco.series.name,
                start_m=seen_lo if start_beyond else state.start_m,
                end_m=seen_hi if end_beyond else state.end_m,
                start_beyond_view=start_beyond,
                end_beyond_view=end_beyond,
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
