"""Which locomotive each recognition shows, and who each locomotive is by the votes so far.

A Recognition names a track, the span of track metres its thumbnail shows and when; it counts for the
tracked locomotive covering most of that span. The votes (cloud.recognition.voting) settle a series
and a number per locomotive id; what settles, conflicts or is overturned becomes an event.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from uuid import UUID

from cloud.db.models import IdentityRow
from cloud.fse import Event, EventKind, Loco
from cloud.recognition.voting import IdentityVotes, Verdict
from shared.messages import Recognition

# A recognition counts for a locomotive covering at least this share of the thumbnail's span.
MIN_COVER = 0.5
# Thumbnails whose readings were counted, remembered so that a reading delivered again (QoS 1 is at
# least once) does not vote twice; hours of a depot's thumbnails.
REMEMBERED_THUMBNAILS = 20_000
VERDICT_EVENTS = {
    "identified": EventKind.IDENTIFIED,
    "conflict": EventKind.IDENTITY_CONFLICT,
    "reidentified": EventKind.REIDENTIFIED,
}


@dataclass(frozen=True)
class Identity:
    """A locomotive's settled series and number, with the share of votes behind each."""

    series: str | None = None
    series_confidence: float = 0.0
    plate: str | None = None
    plate_confidence: float = 0.0
    thumbnail_id: str | None = None


class Identities:
    """Votes per locomotive; thread-safe (ingest writes, the update loop and the API read)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._votes: dict[str, IdentityVotes] = {}
        self._identities: dict[str, Identity] = {}
        self._events: list[Event] = []
        self._dirty: set[str] = set()
        self._counted: OrderedDict[UUID, None] = OrderedDict()
        # Bumped whenever a settled series or number changes, so live views know to redraw.
        self.version = 0

    def restore(self, rows: list[IdentityRow]) -> None:
        """Resume settled identities after a restart."""
        with self._lock:
            for row in rows:
                votes = self._votes.setdefault(row.loco_id, IdentityVotes())
                if row.series:
                    votes.restore("series", row.series, row.series_weight)
                if row.plate:
                    votes.restore("plate", row.plate, row.plate_weight)
                self._identities[row.loco_id] = Identity(
                    row.series, row.series_confidence, row.plate, row.plate_confidence, row.thumbnail_id
                )

    def observe(self, recognition: Recognition, locos: list[Loco]) -> str | None:
        """Count a recognition for the locomotive it shows; returns that locomotive's id, if any."""
        loco = _shown(recognition, locos)
        if loco is None or recognition.rejected:
            return None
        with self._lock:
            if recognition.thumbnail_id in self._counted:
                return None  # delivered again
            self._counted[recognition.thumbnail_id] = None
            if len(self._counted) > REMEMBERED_THUMBNAILS:
                self._counted.popitem(last=False)
            votes = self._votes.setdefault(loco.loco_id, IdentityVotes())
            verdicts = [
                votes.vote("series", recognition.series, recognition.series_confidence),
                votes.vote("plate", recognition.plate, recognition.plate_confidence),
            ]
            series, series_share = votes.settled("series")
            plate, plate_share = votes.settled("plate")
            before = self._identities.get(loco.loco_id, Identity())
            if (before.series, before.plate) != (series, plate):
                self.version += 1
            thumbnail = str(recognition.thumbnail_id) if recognition.plate else before.thumbnail_id
            self._identities[loco.loco_id] = replace(
                before,
                series=series,
                series_confidence=round(series_share, 3),
                plate=plate,
                plate_confidence=round(plate_share, 3),
                thumbnail_id=thumbnail or str(recognition.thumbnail_id),
            )
            self._dirty.add(loco.loco_id)
            for verdict in verdicts:
                if verdict is not None:
                    self._events.append(_event(verdict, recognition, loco))
        return loco.loco_id

    def get(self, loco_id: str) -> Identity | None:
        with self._lock:
            return self._identities.get(loco_id)

    def drain_events(self) -> list[Event]:
        """Events since the last call."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def drain_changed(self) -> list[tuple[str, Identity, float, float]]:
        """Identities changed since the last call, with their vote weights, for the database."""
        with self._lock:
            changed = []
            for loco_id in sorted(self._dirty):
                votes = self._votes[loco_id]
                identity = self._identities[loco_id]
                changed.append((loco_id, identity, votes.weight("series"), votes.weight("plate")))
            self._dirty.clear()
            return changed


def _shown(recognition: Recognition, locos: list[Loco]) -> Loco | None:
    lo, hi = recognition.span.start_m, recognition.span.end_m
    best, best_cover = None, MIN_COVER
    for loco in locos:
        if loco.track_id != recognition.track_id:
            continue
        cover = (min(hi, loco.end_m) - max(lo, loco.start_m)) / max(hi - lo, 1e-6)
        if cover >= best_cover:
            best, best_cover = loco, cover
    return best


def _event(verdict: Verdict, recognition: Recognition, loco: Loco) -> Event:
    name = "number" if verdict.attribute == "plate" else "series"
    detail = f"{name} {verdict.value}" + (f" (was {verdict.previous})" if verdict.previous else "")
    return Event(
        recognition.captured_at,
        VERDICT_EVENTS[verdict.kind],
        loco.track_id,
        loco.loco_id,
        loco.station,
        recognition.camera_id,
        detail,
    )
