"""Which detections the estimators were given, by (flow, node, seq).

The database keeps the first detection under a node's sequence number and drops any later one. The
live estimator must do the same, or live state and history disagree: a detection delivered again
(QoS 1 is at least once) is not fused twice, and a second one under a number already used, with other
content, is a dead letter, not a second truth. Each (flow, node) remembers its latest numbers (the
ones that can still move the live state); at start they are read back from the database.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum
from uuid import UUID

# Sequence numbers remembered per flow and node: minutes of a busy node's detections, far longer than
# a detection can count in the live state.
REMEMBERED_PER_NODE = 4096


class Seen(Enum):
    """What a detection's (flow, node, seq) was, the first time it was asked about."""

    NEW = "new"
    AGAIN = "again"  # the same observation delivered again
    CONFLICT = "conflict"  # the number already carried another observation


class SeenSeqs:
    """Not thread-safe: the ingest's handler thread alone asks (seeding happens before it starts)."""

    def __init__(self, per_node: int = REMEMBERED_PER_NODE) -> None:
        self._per_node = per_node
        self._seen: dict[tuple[str, str], OrderedDict[int, UUID]] = {}

    def check(self, flow: str, node: str, seq: int, observation_id: UUID) -> Seen:
        """Whether (flow, node, seq) is new, and remember it if so."""
        numbers = self._seen.setdefault((flow, node), OrderedDict())
        known = numbers.get(seq)
        if known is not None:
            return Seen.AGAIN if known == observation_id else Seen.CONFLICT
        numbers[seq] = observation_id
        if len(numbers) > self._per_node:
            numbers.popitem(last=False)
        return Seen.NEW

    def first(self, flow: str, node: str, seq: int) -> UUID | None:
        """The observation that (flow, node, seq) was first given to, if remembered."""
        numbers = self._seen.get((flow, node))
        return None if numbers is None else numbers.get(seq)
