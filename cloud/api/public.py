"""What the API shows of the estimator's plain data: its state track by track and its events as the
public models of `cloud.api.schemas`, for the routes that answer with them and the live streams."""

from __future__ import annotations

import itertools
from collections import defaultdict

from cloud.api.schemas import EventPublic, LocoPublic, StationPublic, TrackPublic
from cloud.fse import Event, TrackState
from cloud.identities import Identities
from shared.layout import Facility


def tracks_public(
    facility: Facility, states: list[TrackState], identities: Identities | None = None
) -> list[TrackPublic]:
    """Each track of `states` that `facility` has, with its locomotives (identified where the
    recognisers settled who they are, each number settled on more than one marked on each) and its
    stations' occupancy."""
    identified = {
        t.track_id: [
            LocoPublic.model_validate(loco, from_attributes=True).identified(
                identities.get(loco.loco_id) if identities else None
            )
            for loco in t.locos
        ]
        for t in states
    }
    holders: dict[str, list[str]] = defaultdict(list)
    for loco in itertools.chain.from_iterable(identified.values()):
        if loco.number:
            holders[loco.number].append(loco.loco_id)
    out = []
    for t in states:
        locos = [
            loco.model_copy(update={"number_also_on": [i for i in holders[loco.number] if i != loco.loco_id]})
            if loco.number and len(holders[loco.number]) > 1
            else loco
            for loco in identified[t.track_id]
        ]
        track = facility.tracks.get(t.track_id)
        if track is None:  # a state of another layout (swapped meanwhile): the next one matches
            continue
        stations = [
            StationPublic(
                station_id=sid,
                name=st.name,
                start_m=st.start_m,
                end_m=st.end_m,
                occupied_by=[loco.loco_id for loco in locos if loco.station == sid],
            )
            for sid, st in facility.stations_on_track(t.track_id).items()
        ]
        out.append(
            TrackPublic(
                track_id=t.track_id,
                name=track.name,
                length_m=track.length_m,
                locos=locos,
                unknown=list(t.unknown),
                stations=stations,
            )
        )
    return out


def event_public(event: Event) -> EventPublic:
    """An event as the API shows it, field by field (not stored yet, so without an id)."""
    return EventPublic.model_validate(event, from_attributes=True)
