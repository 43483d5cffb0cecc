"""The shipped LPE on camera placements it never saw, drawn from the depot envelope it is made for.

The benchmark (`python -m bench.lpe --only placements`) holds the strict figures per placement, and
2.0.0 does not meet them all (its model card). The bounds here are loose, so that a fresh draw of a
few frames does not make the test flaky, yet the model trained on one mounting fails them (1.0.0 on
these placements: F1 0.04–0.77, counts right 5–78 %, empty frames clean 0–13 %, a neighbour's
locomotive taken for its own in 26–82 % of the frames). This draw holds a weak spot of 2.0.0: a
camera 6 m high, 2.3 m from the track, seeing 7.5 m of it, places ends 0.26–0.29 m off (median).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.lpe_scoring import Tally
from edge.lpe.decode import decode_strip
from edge.lpe.openvino_lpe import OpenVinoLpe
from shared.layout import load_facility
from tests.edge.test_lpe import MODEL_DIR, PREVIOUS_DIR
from training.lpe.data import (
    PLACEMENT_CONDITIONS,
    TRAIN_PLACEMENT_SEEDS,
    VAL_PLACEMENT_SEEDS,
    Samples,
    placement_jobs,
    render_jobs,
)

# Neither trained nor validated on, nor the benchmark's (19001 and up).
FRESH_PLACEMENT_SEED = 4343
PLACEMENTS = 3
FRAMES = 40


@pytest.fixture(scope="module")
def placements(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Samples]]:
    assert FRESH_PLACEMENT_SEED not in (*TRAIN_PLACEMENT_SEEDS, *VAL_PLACEMENT_SEEDS)
    folder = tmp_path_factory.mktemp("placements")
    jobs = placement_jobs(folder, FRESH_PLACEMENT_SEED, PLACEMENTS, FRAMES, PLACEMENT_CONDITIONS)
    return [(job.layout, render_jobs([job], job.layout.stem)) for job in jobs]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_shipped_model_holds_on_fresh_placements(
    placements: list[tuple[Path, Samples]], precision: str
) -> None:
    for layout, samples in placements:
        summary = _summary(MODEL_DIR, layout, samples, precision)
        assert sum(1 for truth in samples.truth if truth) >= 10, (
            f"{layout.stem}: the sample must hold locomotives"
        )
        assert summary["occupancy_f1"] >= 0.94, (layout.stem, summary)
        assert summary["count_accuracy"] >= 0.8, (layout.stem, summary)
        assert summary["empty_frames_clean"] >= 0.9, (layout.stem, summary)
        assert summary["end_error_median_m"] <= 0.4, (layout.stem, summary)
        assert summary["neighbour_reported"] <= 0.1, (layout.stem, summary)


def _summary(model_dir: Path, layout: Path, samples: Samples, precision: str) -> dict[str, float]:
    lpe = OpenVinoLpe(model_dir, load_facility(layout).cameras, precision=precision, batch=8)  # type: ignore[arg-type]
    (geometry,) = lpe.geometries.values()
    tally = Tally()
    scores = lpe.infer_strips(samples.strips, samples.valid, samples.metres_per_column)
    for column_scores, truth, neighbours in zip(scores, samples.truth, samples.neighbours, strict=True):
        estimate = decode_strip(column_scores, geometry)
        tally.add((geometry.view_start_m, geometry.view_end_m), truth, estimate, neighbours)
    return tally.summary()


def test_the_model_trained_on_one_mounting_fails_the_same_bounds(
    placements: list[tuple[Path, Samples]],
) -> None:
    # The bounds above tell a model made for the envelope from one that is not.
    for layout, samples in placements:
        summary = _summary(PREVIOUS_DIR, layout, samples, "fp32")
        assert (
            summary["occupancy_f1"] < 0.94
            or summary["count_accuracy"] < 0.8
            or summary["empty_frames_clean"] < 0.9
            or summary["neighbour_reported"] > 0.1
        ), (layout.stem, summary)
