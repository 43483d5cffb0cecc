"""Pairs the runs of occupied cells an estimator update finds with the spans it tracks (its
locomotives, then the runs it has not yet confirmed as locomotives). Pure logic over plain data.

Pairs are taken best first over the whole track, not run by run from the track's start: fused views
are captured at different instants, so a locomotive on the move can show as two runs (a camera that
sampled it earlier still has it where it was, with the stretch between free); taking runs in track
order let the stale one, merely first, take the locomotive from the one that overlaps it most.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)
Span = tuple[float, float]


@dataclass(frozen=True)
class Pending:
    """A run of occupied cells seen without a break since `first_seen`, not yet a locomotive."""

    start_m: float
    end_m: float
    first_seen: datetime


def pair_runs(
    runs: Sequence[Span], tracked: Mapping[Key, Span], min_overlap_m: float, slack_m: float
) -> dict[Key, int]:
    """Each tracked span's run (by index), at most one run per span and one span per run. A run and a
    span pair when they overlap by `min_overlap_m` with the span widened by `slack_m` (how far it may
    have moved since); the pairs that overlap most, true overlap counting twice, are taken first;
    ties go to the earlier run, then to the earlier span."""
    candidates = []
    for index, (lo, hi) in enumerate(runs):
        for order, (key, (start, end)) in enumerate(tracked.items()):
            near = min(hi, end + slack_m) - max(lo, start - slack_m)
            score = near + min(hi, end) - max(lo, start)  # true overlap first, then a near miss
            if near >= min_overlap_m and score > min_overlap_m:
                candidates.append((-score, index, order, key))
    candidates.sort(key=lambda c: c[:3])
    paired: dict[Key, int] = {}
    taken: set[int] = set()
    for _, index, _, key in candidates:
        if key not in paired and index not in taken:
            paired[key] = index
            taken.add(index)
    return paired
