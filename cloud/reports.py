"""Station reports from the stored history (pure logic): each locomotive's visits to the repair
stations, and per station how busy it was over a period.

A locomotive's recorded positions say where it stood from each moment on (a position is stored
whenever its extent changes, with the station it is then at); a visit is a run of its positions at one
station, from the first of them to the position that took it elsewhere, or its departure. Positions
and departures are stored as the estimator makes them and survive restarts (a restored locomotive goes
on under its id), so a visit that spans a restart is one visit.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.layout import Facility


@dataclass(frozen=True)
class Stood:
    """A recorded position: from `at` on, the locomotive stood at `station` (None: at none)."""

    loco_id: str
    track_id: str
    at: datetime
    station: str | None


@dataclass(frozen=True)
class Visit:
    """A locomotive's stay at a station; `left` is None while it is still there at the period's end."""

    station: str
    track_id: str
    loco_id: str
    arrived: datetime
    left: datetime | None

    def dwell(self, end: datetime) -> timedelta:
        """How long it stayed (up to `end` while it is still there)."""
        return (self.left or end) - self.arrived


@dataclass(frozen=True)
class StationFigures:
    """How busy a station was over a period."""

    station_id: str
    name: str
    track_id: str
    occupied_share: float  # of the period, by any locomotive
    visits: int
    mean_dwell_s: float | None
    max_dwell_s: float | None


def visits(
    stood: Iterable[Stood],
    departures: Mapping[str, datetime],
    start: datetime,
    end: datetime,
    min_dwell: timedelta = timedelta(0),
) -> list[Visit]:
    """The visits that overlap [start, end) and lasted at least `min_dwell` (a locomotive passing
    through while it shunts is not a visit), oldest first. `stood` must be in order of locomotive and
    time; a departure after `end` is not known at `end`."""
    found = []
    for loco_id, positions in itertools.groupby(stood, key=lambda s: s.loco_id):
        gone = departures.get(loco_id)
        runs = _runs(list(positions), gone if gone is not None and gone < end else None)
        for visit in runs:
            overlaps = visit.arrived < end and (visit.left is None or visit.left > start)
            if overlaps and visit.dwell(end) >= min_dwell:
                found.append(visit)
    return sorted(found, key=lambda v: (v.arrived, v.station, v.loco_id))


def _runs(positions: list[Stood], gone: datetime | None) -> list[Visit]:
    runs: list[Visit] = []
    current: Stood | None = None
    for position in [*positions, None]:
        if position is not None and (gone is not None and position.at >= gone):
            position = None  # recorded after its departure (a later stay under the same id): not this one
        if current is not None and (position is None or position.station != current.station):
            left = position.at if position is not None else gone
            if current.station is not None:
                runs.append(Visit(current.station, current.track_id, current.loco_id, current.at, left))
            current = None
        if position is None:
            break
        if current is None:
            current = position
    return runs


def station_figures(
    facility: Facility, found: list[Visit], start: datetime, end: datetime
) -> list[StationFigures]:
    """Each station of the layout over [start, end): the share of it any visit held the station, the
    visits that overlap it, and their dwell (each whole, up to `end` while it goes on)."""
    period = (end - start).total_seconds()
    figures = []
    for station_id, station in facility.stations.items():
        mine = [v for v in found if v.station == station_id]
        spans = sorted((max(v.arrived, start), min(v.left or end, end)) for v in mine)
        held = 0.0
        reach = start
        for a, b in spans:
            a = max(a, reach)
            if b > a:
                held += (b - a).total_seconds()
                reach = b
        dwells = [v.dwell(end).total_seconds() for v in mine]
        figures.append(
            StationFigures(
                station_id=station_id,
                name=station.name,
                track_id=station.track,
                occupied_share=round(held / period, 4) if period > 0 else 0.0,
                visits=len(mine),
                mean_dwell_s=round(statistics.fmean(dwells), 1) if dwells else None,
                max_dwell_s=round(max(dwells), 1) if dwells else None,
            )
        )
    return figures
