"""Who a locomotive is, from many readings (pure logic).

Each reading votes for a series and a number with its confidence as weight. A value settles once its
weight reaches SETTLE_WEIGHT and it holds at least SETTLE_SHARE of all the weight cast; one bad read
cannot rename a locomotive. A settled value is changed only when another has gathered OVERTURN_FACTOR
times its weight, and that change is reported as an event; a read that merely disagrees is reported
as a conflict, once per distinct value.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

SETTLE_WEIGHT = 1.5
SETTLE_SHARE = 0.7
OVERTURN_FACTOR = 3.0


@dataclass(frozen=True)
class Verdict:
    """What a vote changed: a value settled, contradicted or overturned."""

    kind: str  # "identified", "conflict", "reidentified"
    attribute: str  # "series" or "plate"
    value: str
    previous: str | None
    confidence: float


@dataclass
class _Tally:
    weights: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    settled: str | None = None
    conflicts_told: set[str] = field(default_factory=set)

    def share(self, value: str) -> float:
        total = sum(self.weights.values())
        return self.weights[value] / total if total else 0.0


class IdentityVotes:
    """The votes for one locomotive."""

    def __init__(self) -> None:
        self._tallies = {"series": _Tally(), "plate": _Tally()}

    def settled(self, attribute: str) -> tuple[str | None, float]:
        """The settled value of "series" or "plate" and its share of the votes."""
        tally = self._tallies[attribute]
        return tally.settled, tally.share(tally.settled) if tally.settled else 0.0

    def vote(self, attribute: str, value: str | None, confidence: float) -> Verdict | None:
        """Count one reading; returns what it changed, if anything."""
        if value is None or confidence <= 0:
            return None
        tally = self._tallies[attribute]
        tally.weights[value] += confidence
        weight = tally.weights[value]
        if tally.settled is None:
            if weight >= SETTLE_WEIGHT and tally.share(value) >= SETTLE_SHARE:
                tally.settled = value
                return Verdict("identified", attribute, value, None, tally.share(value))
            return None
        if value == tally.settled:
            return None
        if weight >= OVERTURN_FACTOR * tally.weights[tally.settled]:
            previous, tally.settled = tally.settled, value
            tally.conflicts_told.clear()
            return Verdict("reidentified", attribute, value, previous, tally.share(value))
        if value not in tally.conflicts_told:
            tally.conflicts_told.add(value)
            return Verdict("conflict", attribute, value, tally.settled, confidence)
        return None

    def weight(self, attribute: str) -> float:
        """The weight behind the settled value (0 when nothing settled)."""
        tally = self._tallies[attribute]
        return tally.weights[tally.settled] if tally.settled else 0.0

    def restore(self, attribute: str, value: str, weight: float) -> None:
        """Resume a settled value (after a restart) with the weight it had (identities saved before
        the whole tally was)."""
        tally = self._tallies[attribute]
        tally.weights[value] = max(weight, SETTLE_WEIGHT)
        tally.settled = value

    def copy(self) -> IdentityVotes:
        """An independent copy, to vote on before the vote is saved."""
        return copy.deepcopy(self)

    def to_json(self) -> dict[str, Any]:
        """Every weight, the settled values and the conflicts told: all a restart needs to go on."""
        return {
            name: {
                "weights": dict(t.weights),
                "settled": t.settled,
                "conflicts_told": sorted(t.conflicts_told),
            }
            for name, t in self._tallies.items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IdentityVotes:
        """Votes resumed from what `to_json` returned."""
        votes = cls()
        for name, saved in data.items():
            tally = votes._tallies[name]
            tally.weights.update(saved["weights"])
            tally.settled = saved["settled"]
            tally.conflicts_told = set(saved["conflicts_told"])
        return votes
