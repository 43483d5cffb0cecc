"""From the model's per-column scores to locomotive extents in track metres (pure logic).

The model scores each strip column for occupancy and for being a locomotive's lower or upper end.
Runs of occupied columns become extents; each end is placed at the end-score peak near the run's
border, or flagged beyond the view when the run reaches the border of the seen columns (where the
strip still shows the plane: shared.strip.SEEN_SHARE) without an end peak inside them. Past the seen
columns the image shows no locomotive side: no end is placed there, so a run reaching them ends at the
seen border, beyond view (the facility estimator takes the unseen rest as unknown, not free), and a
run lying only there is no locomotive this camera can place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.messages import LocoExtent
from shared.strip import StripGeometry

# A column is occupied above this probability.
OCCUPIED = 0.5
# Shorter runs are noise (a worker, a shadow): the shortest locomotive part worth reporting, metres.
MIN_RUN_M = 1.0
# A locomotive running out of the view may show less: a run this long that reaches the seen border
# and has an end peak on its inner side (which no worker or shadow has) is a locomotive, metres.
MIN_BORDER_RUN_M = 0.3
# Gaps narrower than this inside a run are the gangway of a two-section locomotive, not two locos.
MAX_GAP_M = 0.4
# An end peak is searched this far either side of the run border, metres.
EDGE_WINDOW_M = 1.0
# A run border within this many columns of the seen columns' border may be the view border.
BORDER_COLUMNS = 2
# Below this end score at the seen border the end is beyond the view.
EDGE_PRESENT = 0.3

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ColumnScores:
    """Per-column probabilities from the model for one strip."""

    occupancy: FloatArray
    start_edge: FloatArray
    end_edge: FloatArray


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    padded = np.concatenate([[False], mask, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(changes[::2], changes[1::2], strict=True)]


def _peak(scores: FloatArray, lo: int, hi: int) -> tuple[float, float]:
    """Sub-column position (column-edge units) and height of the strongest peak in [lo, hi)."""
    lo, hi = max(lo, 0), min(hi, len(scores))
    if hi <= lo:
        return float(lo), 0.0
    window = scores[lo:hi]
    i = int(np.argmax(window))
    centre = lo + i
    left, right = max(centre - 2, 0), min(centre + 3, len(scores))
    weights = scores[left:right]
    position = float(np.sum((np.arange(left, right) + 0.5) * weights) / max(float(weights.sum()), 1e-6))
    return position, float(window[i])


def decode(
    scores: ColumnScores,
    view_start_m: float,
    metres_per_column: float,
    seen: tuple[int, int] | None = None,
) -> list[LocoExtent]:
    """Extents of the locomotives in one strip, by increasing metres; `seen` is the strip's seen
    columns [first, last + 1) (StripGeometry.seen_columns), all of them by default."""
    width = len(scores.occupancy)
    first, last = seen if seen is not None else (0, width)
    runs = _runs(scores.occupancy > OCCUPIED)
    max_gap = round(MAX_GAP_M / metres_per_column)
    merged: list[tuple[int, int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= max_gap:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    min_run, min_border_run = MIN_RUN_M / metres_per_column, MIN_BORDER_RUN_M / metres_per_column
    window = round(EDGE_WINDOW_M / metres_per_column)
    extents = []
    for a, b in merged:
        if b - a < min_border_run or b <= first or a >= last:
            continue
        start_col, start_score = _peak(scores.start_edge, max(a - window, first), a + window)
        end_col, end_score = _peak(scores.end_edge, b - window, min(b + window, last))
        start_beyond = a <= first + BORDER_COLUMNS and start_score < EDGE_PRESENT
        end_beyond = b >= last - BORDER_COLUMNS and end_score < EDGE_PRESENT
        if b - a < min_run and not (
            (start_beyond and end_score >= EDGE_PRESENT) or (end_beyond and start_score >= EDGE_PRESENT)
        ):
            continue
        start_col = float(first) if start_beyond else (start_col if start_score >= EDGE_PRESENT else float(a))
        end_col = float(last) if end_beyond else (end_col if end_score >= EDGE_PRESENT else float(b))
        if end_col <= start_col:
            start_col, end_col = float(a), float(b)
        extents.append(
            LocoExtent(
                start_m=round(view_start_m + start_col * metres_per_column, 3),
                end_m=round(view_start_m + end_col * metres_per_column, 3),
                start_beyond_view=start_beyond,
                end_beyond_view=end_beyond,
                confidence=round(float(scores.occupancy[a:b].mean()), 3),
            )
        )
    return extents


def decode_strip(scores: ColumnScores, geometry: StripGeometry) -> list[LocoExtent]:
    """`decode` for a strip of `geometry`: its view, scale and seen columns."""
    return decode(scores, geometry.view_start_m, geometry.metres_per_column, geometry.seen_columns)
