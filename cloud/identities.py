"""Which locomotive each recognition shows, and who each locomotive is by the votes so far.

A Recognition names a track, the span of track metres its thumbnail shows and when; it counts for the
tracked locomotive covering most of that span. The votes (cloud.recognition.voting) settle a series
and a number per locomotive id; what settles, conflicts or is overturned becomes an event. A number is
in one place: one that settles while another locomotive present has it settled is an identity conflict
too (an event naming the other), never two locomotives silently sharing it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Vote:
    """One recognition counted for one locomotive: what must be saved before it counts."""

    loco_id: str
    recognition: Recognition
    identity: Identity  # the locomotive's identity with this vote counted
    votes: IdentityVotes  # the whole tally with this vote counted


# Saves a vote (the recognition, and the locomotive's identity and tally after it); False when the
# recognition was counted already (delivered again after a restart).
SaveVote = Callable[[Vote], bool]


class Identities:
    """Votes per locomotive; thread-safe (the ingest's writer votes, the update loop and the API read).

    A vote counts in memory only once `save` has stored it: a recognition is acknowledged after
    `observe` returns, so nothing acknowledged is ever lost, and a save that fails leaves nothing
    counted (the ingest tries again). Votes come from one thread only, so the tally a vote is cast on
    cannot change while it is saved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._votes: dict[str, IdentityVotes] = {}
        self._identities: dict[str, Identity] = {}
        self._events: list[Event] = []
        self._counted: OrderedDict[UUID, None] = OrderedDict()
        # Bumped whenever a settled series or number changes, so live views know to redraw.
        self.version = 0

    def restore(self, rows: list[IdentityRow], counted: Sequence[UUID] = ()) -> None:
        """Resume identities after a restart, each with its whole tally where it was saved (only the
        settled values where it was not), and the thumbnails already counted."""
        with self._lock:
            for row in rows:
                if row.tallies:
                    votes = IdentityVotes.from_json(row.tallies)
                else:
                    votes = IdentityVotes()
                    if row.series:
                        votes.restore("series", row.series, row.series_weight)
                    if row.plate:
                        votes.restore("plate", row.plate, row.plate_weight)
                self._votes[row.loco_id] = votes
                self._identities[row.loco_id] = Identity(
                    row.series, row.series_confidence, row.plate, row.plate_confidence, row.thumbnail_id
                )
            for thumbnail_id in counted:
                self._remember(thumbnail_id)

    def observe(
        self, recognition: Recognition, locos: list[Loco], save: SaveVote | None = None
    ) -> str | None:
        """Count a recognition for the locomotive it shows, once `save` stored it; returns that
        locomotive's id, if it counted."""
        loco = _shown(recognition, locos)
        if loco is None or recognition.rejected:
            return None
        with self._lock:
            if recognition.thumbnail_id in self._counted:
                return None  # delivered again
            votes = self._votes.get(loco.loco_id, IdentityVotes()).copy()
            before = self._identities.get(loco.loco_id, Identity())
        verdicts = [
            votes.vote("series", recognition.series, recognition.series_confidence),
            votes.vote("plate", recognition.plate, recognition.plate_confidence),
        ]
        series, series_share = votes.settled("series")
        plate, plate_share = votes.settled("plate")
        thumbnail = str(recognition.thumbnail_id) if recognition.plate else before.thumbnail_id
        identity = replace(
            before,
            series=series,
            series_confidence=round(series_share, 3),
            plate=plate,
            plate_confidence=round(plate_share, 3),
            thumbnail_id=thumbnail or str(recognition.thumbnail_id),
        )
        counts = save is None or save(Vote(loco.loco_id, recognition, identity, votes))
        with self._lock:
            self._remember(recognition.thumbnail_id)
            if not counts:
                return None
            if (before.series, before.plate) != (series, plate):
                self.version += 1
            self._votes[loco.loco_id] = votes
            self._identities[loco.loco_id] = identity
            self._events.extend(_event(v, recognition, loco) for v in verdicts if v is not None)
            if plate is not None and plate != before.plate:
                sharing = [o for o in locos if o.loco_id != loco.loco_id and self._plate(o.loco_id) == plate]
                self._events.extend(_shared(plate, recognition, loco, other) for other in sharing)
        return loco.loco_id

    def get(self, loco_id: str) -> Identity | None:
        """The identity of locomotive `loco_id`, or None while no recognition of it has counted."""
        with self._lock:
            return self._identities.get(loco_id)

    def _plate(self, loco_id: str) -> str | None:
        identity = self._identities.get(loco_id)
        return None if identity is None else identity.plate

    def drain_events(self) -> list[Event]:
        """Events since the last call."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def _remember(self, thumbnail_id: UUID) -> None:
        self._counted[thumbnail_id] = None
        if len(self._counted) > REMEMBERED_THUMBNAILS:
            self._counted.popitem(last=False)


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


def _shared(plate: str, recognition: Recognition, loco: Loco, other: Loco) -> Event:
    return Event(
        recognition.captured_at,
        EventKind.IDENTITY_CONFLICT,
        loco.track_id,
        loco.loco_id,
        loco.station,
        recognition.camera_id,
        f"number {plate} is also settled on {other.loco_id} ({other.track_id})",
    )


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
