"""Comparing two views of the facility instant by instant: two flows, or a flow and the simulator's
ground truth. Over the watched track both views know, how much they agree on occupied and free; for
the locomotives both see (matched by overlap), how far apart their ends are; which locomotives only
one has where the other could have seen them; how often the second view gave a locomotive of the
first a new id (identity switches); and, where both recognised a locomotive's series or number,
whether they read the same. Pure logic over plain data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cloud.fse import GRID_M, Loco, TrackState
from cloud.identities import Identities
from shared.layout import Facility
from shared.seen import seen_stretches

# Two locomotives are the same one when they overlap at least this much, metres.
MIN_OVERLAP_M = 2.0


@dataclass(frozen=True)
class Seen:
    """A locomotive as one view has it."""

    loco_id: str
    start_m: float
    end_m: float
    number: str | None = None  # the recognised number (plate), if any
    series: str | None = None  # the recognised series, if any


@dataclass(frozen=True)
class TrackView:
    """One track at one instant, as one view has it."""

    locos: tuple[Seen, ...]
    unknown: tuple[tuple[float, float], ...] = ()


View = dict[str, TrackView]  # by track id


def view_of(states: Iterable[TrackState], identities: Identities | None = None) -> View:
    """A flow's state as a view, with the series and numbers its identities settled."""

    def seen(loco: Loco) -> Seen:
        identity = identities.get(loco.loco_id) if identities is not None else None
        if identity is None:
            return Seen(loco.loco_id, loco.start_m, loco.end_m)
        return Seen(loco.loco_id, loco.start_m, loco.end_m, identity.plate, identity.series)

    return {s.track_id: TrackView(tuple(seen(lo) for lo in s.locos), s.unknown) for s in states}


@dataclass
class Comparison:
    """What the instants compared add up to."""

    instants: int = 0
    agreed_m: float = 0.0
    compared_m: float = 0.0
    end_errors_m: list[float] = field(default_factory=list)
    matched: int = 0
    only_a: int = 0
    only_b: int = 0
    id_switches: int = 0
    numbers_compared: int = 0
    number_differences: int = 0
    series_compared: int = 0
    series_differences: int = 0
    _partner: dict[str, str] = field(default_factory=dict)
    _coverage: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def add(self, facility: Facility, a: View, b: View) -> None:
        """Compare one instant."""
        self.instants += 1
        for track_id, track in facility.tracks.items():
            ta, tb = a.get(track_id, TrackView(())), b.get(track_id, TrackView(()))
            # The cameras' coverage of a track is the same at every instant: computed once.
            covered = self._coverage.get(track_id)
            if covered is None:
                covered = self._coverage[track_id] = _covered(facility, track_id, track.length_m)
            known = covered & ~_mask(ta.unknown, track.length_m) & ~_mask(tb.unknown, track.length_m)
            occ_a, occ_b = _occupied(ta.locos, track.length_m), _occupied(tb.locos, track.length_m)
            self.compared_m += float(known.sum()) * GRID_M
            self.agreed_m += float((known & (occ_a == occ_b)).sum()) * GRID_M
            pairs, lone_a, lone_b = match(ta.locos, tb.locos)
            self.matched += len(pairs)
            # A locomotive only one view has counts where the other could have seen it: on track it
            # watches and knows, not in its unknown or unwatched stretches.
            self.only_a += sum(_within(x, known) for x in lone_a)
            self.only_b += sum(_within(y, known) for y in lone_b)
            for x, y in pairs:
                self.end_errors_m += [abs(x.start_m - y.start_m), abs(x.end_m - y.end_m)]
                if x.number and y.number:
                    self.numbers_compared += 1
                    self.number_differences += x.number != y.number
                if x.series and y.series:
                    self.series_compared += 1
                    self.series_differences += x.series != y.series
                if self._partner.setdefault(x.loco_id, y.loco_id) != y.loco_id:
                    self.id_switches += 1
                    self._partner[x.loco_id] = y.loco_id

    def summary(self) -> dict[str, float | int | None]:
        """The figures, JSON-ready (None where there was nothing to measure)."""
        errors = np.array(self.end_errors_m)
        return {
            "instants": self.instants,
            "occupancy_agreement": round(self.agreed_m / self.compared_m, 4) if self.compared_m else None,
            "compared_track_m": round(self.compared_m / max(self.instants, 1), 1),
            "end_error_median_m": round(float(np.median(errors)), 3) if errors.size else None,
            "end_error_p95_m": round(float(np.percentile(errors, 95)), 3) if errors.size else None,
            "matched": self.matched,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "id_switches": self.id_switches,
            "numbers_compared": self.numbers_compared,
            "number_differences": self.number_differences,
            "series_compared": self.series_compared,
            "series_differences": self.series_differences,
        }


def match(a: Sequence[Seen], b: Sequence[Seen]) -> tuple[list[tuple[Seen, Seen]], list[Seen], list[Seen]]:
    """Pairs of the same locomotive (largest overlaps first), and those only in `a`, only in `b`."""
    overlaps = sorted(
        (
            (min(x.end_m, y.end_m) - max(x.start_m, y.start_m), i, j)
            for i, x in enumerate(a)
            for j, y in enumerate(b)
        ),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for overlap, i, j in overlaps:
        if overlap < MIN_OVERLAP_M:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((a[i], b[j]))
    return (
        pairs,
        [x for i, x in enumerate(a) if i not in used_a],
        [y for j, y in enumerate(b) if j not in used_b],
    )


def _within(loco: Seen, known: npt.NDArray[np.bool_]) -> bool:
    start, end = max(round(loco.start_m / GRID_M), 0), max(round(loco.end_m / GRID_M), 0)
    return float(known[start:end].sum()) * GRID_M >= MIN_OVERLAP_M


def _cells(length_m: float) -> int:
    return int(np.ceil(length_m / GRID_M))


def _mask(spans: Iterable[tuple[float, float]], length_m: float) -> npt.NDArray[np.bool_]:
    mask = np.zeros(_cells(length_m), bool)
    for start, end in spans:
        mask[max(round(start / GRID_M), 0) : max(round(end / GRID_M), 0)] = True
    return mask


def _occupied(locos: Iterable[Seen], length_m: float) -> npt.NDArray[np.bool_]:
    return _mask(((lo.start_m, lo.end_m) for lo in locos), length_m)


def _covered(facility: Facility, track_id: str, length_m: float) -> npt.NDArray[np.bool_]:
    # What the estimators know of at all: where a camera can place an end (shared.seen).
    return _mask(seen_stretches(facility, track_id).values(), length_m)
