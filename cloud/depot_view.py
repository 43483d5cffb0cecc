"""The facility as the plant's SCADA integrations (OPC UA, Sparkplug B) show it: the layout and the
prod flow's tracks as the API has them now, and when each station was taken by its occupant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cloud.api.schemas import LocoPublic, TrackPublic
from shared.layout import Facility


@dataclass(frozen=True)
class DepotView:
    """What an integration shows: the layout, and its tracks as the API has them now."""

    facility: Facility
    tracks: list[TrackPublic]


@dataclass(frozen=True)
class StationNow:
    """A station now: its occupant (empty when free) and since when it has been so."""

    station_id: str
    track_id: str
    occupant: LocoPublic | None
    since: datetime


class StationSince:
    """When each station was taken (or freed), told apart by who occupies it at each look; a station
    already taken at the first look was taken when its occupant was first seen, at the latest."""

    def __init__(self) -> None:
        self._since: dict[str, tuple[str, datetime]] = {}  # station -> (occupant, since)

    def stations(self, view: DepotView) -> list[StationNow]:
        """Every station of the view's tracks, with its occupant and since when."""
        now = datetime.now(UTC)
        out = []
        for track in view.tracks:
            for station in track.stations:
                occupant_id = station.occupied_by[0] if station.occupied_by else ""
                loco = next((lo for lo in track.locos if lo.loco_id == occupant_id), None)
                before = self._since.get(station.station_id)
                if before is None or before[0] != occupant_id:
                    since = now
                    if before is None and loco is not None:
                        since = min(since, loco.first_seen)
                    self._since[station.station_id] = (occupant_id, since)
                out.append(
                    StationNow(station.station_id, track.track_id, loco, self._since[station.station_id][1])
                )
        return out

    def forget(self) -> None:
        """Start over (a new layout)."""
        self._since = {}
