"""Accuracy of estimated extents against ground truth, as the LPE benchmark and model card report it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.messages import LocoExtent
from sim.truth import TruthExtent

# Ends further apart than this are different ends, not an error.
MATCH_M = 3.0
# Occupancy is compared on a grid this fine, metres.
GRID_M = 0.05


@dataclass
class Tally:
    """Accumulates per-frame comparisons; `summary()` gives the reported figures."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    end_errors: list[float] = field(default_factory=list)
    ends_missed: int = 0
    beyond_correct: int = 0
    beyond_total: int = 0
    empty_frames: int = 0
    empty_frames_clean: int = 0
    count_correct: int = 0
    frames: int = 0
    neighbour_frames: int = 0
    neighbour_reported: int = 0

    def add(
        self,
        view: tuple[float, float],
        truth: Sequence[TruthExtent],
        estimate: Sequence[LocoExtent],
        neighbours: Sequence[TruthExtent] = (),
    ) -> None:
        """Compare one frame's estimate with its truth; `neighbours` are the neighbouring tracks'
        locomotives along the view, in own-track metres."""
        self.frames += 1
        if neighbours:
            self.neighbour_frames += 1
            self.neighbour_reported += any(
                _overlap(e, neighbours) > 0 and _overlap(e, truth) < 0.5 * (e.end_m - e.start_m)
                for e in estimate
            )
        grid = np.arange(view[0] + GRID_M / 2, view[1], GRID_M)
        want = _cover(grid, [(t.start_m, t.end_m) for t in truth])
        got = _cover(grid, [(e.start_m, e.end_m) for e in estimate])
        self.tp += int(np.sum(want & got))
        self.fp += int(np.sum(~want & got))
        self.fn += int(np.sum(want & ~got))
        self.count_correct += len(truth) == len(estimate)
        if not truth:
            self.empty_frames += 1
            self.empty_frames_clean += not estimate
        for t in truth:
            match = _best_overlap(t, estimate)
            for beyond, true_m, est in (
                (
                    t.start_beyond_view,
                    t.start_m,
                    None if match is None else (match.start_beyond_view, match.start_m),
                ),
                (t.end_beyond_view, t.end_m, None if match is None else (match.end_beyond_view, match.end_m)),
            ):
                self.beyond_total += 1
                if est is None:
                    self.ends_missed += not beyond
                    continue
                est_beyond, est_m = est
                self.beyond_correct += est_beyond == beyond
                if not beyond:
                    if est_beyond or abs(est_m - true_m) > MATCH_M:
                        self.ends_missed += 1
                    else:
                        self.end_errors.append(abs(est_m - true_m))

    def summary(self) -> dict[str, float]:
        """The figures of merit."""
        precision = self.tp / max(self.tp + self.fp, 1)
        recall = self.tp / max(self.tp + self.fn, 1)
        errors = np.array(self.end_errors) if self.end_errors else np.array([np.nan])
        return {
            "frames": float(self.frames),
            "occupancy_f1": 2 * precision * recall / max(precision + recall, 1e-9),
            "end_error_median_m": float(np.median(errors)),
            "end_error_p95_m": float(np.percentile(errors, 95)),
            "visible_ends": float(len(self.end_errors) + self.ends_missed),
            "ends_missed": float(self.ends_missed),
            "beyond_view_accuracy": self.beyond_correct / max(self.beyond_total, 1),
            "empty_frames": float(self.empty_frames),
            "empty_frames_clean": self.empty_frames_clean / max(self.empty_frames, 1),
            "count_accuracy": self.count_correct / max(self.frames, 1),
            "neighbour_frames": float(self.neighbour_frames),
            # Frames with a neighbouring track's locomotive in view where an extent was reported on
            # this track that lies mostly off this track's locomotives and on the neighbour's.
            "neighbour_reported": self.neighbour_reported / max(self.neighbour_frames, 1),
        }


def _cover(grid: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    covered = np.zeros(len(grid), dtype=bool)
    for lo, hi in spans:
        covered |= (grid >= lo) & (grid < hi)
    return covered


def _overlap(extent: LocoExtent, others: Sequence[TruthExtent]) -> float:
    """Metres of `extent` that lie on any of `others`."""
    return sum(max(0.0, min(extent.end_m, o.end_m) - max(extent.start_m, o.start_m)) for o in others)


def _best_overlap(truth: TruthExtent, estimate: Sequence[LocoExtent]) -> LocoExtent | None:
    best, best_overlap = None, 0.0
    for e in estimate:
        overlap = min(truth.end_m, e.end_m) - max(truth.start_m, e.start_m)
        if overlap > best_overlap:
            best, best_overlap = e, overlap
    return best
