"""The series classifier with the shipped IR, on freshly simulated thumbnails it was never trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cloud.recognition.errors import BadThumbnail, RecognitionModelError
from cloud.recognition.series import SeriesClassifier
from shared.layout import Facility
from sim.fleet import SERIES
from sim.scenario import Conditions, Scenario
from tests.conftest import REPO
from training.recognition.thumbs import Thumb, generate

MODEL_DIR = REPO / "ir_models" / "loco_model" / "1.0.0"
# Seeds 900-999 are never trained on; 950 is not one of the benchmark's either.
FRESH_SEED = 950


@pytest.fixture(scope="module")
def classifier() -> SeriesClassifier:
    return SeriesClassifier(MODEL_DIR)


@pytest.fixture(scope="module")
def fresh_thumbs(facility: Facility) -> list[Thumb]:
    # Two daylight and two night instants (the clock starts at 06:00), some blur, workers in view.
    conditions = Conditions(blur_sigma_px=(0.0, 1.5), motion_blur_px=(0.0, 4.0), workers_per_camera=0.8)
    times = [4 * 3600.0, 9 * 3600.0, 16 * 3600.0, 21 * 3600.0]
    return generate(facility, Scenario(seed=FRESH_SEED, conditions=conditions), times)


def test_shipped_model_is_small_and_labelled() -> None:
    size = sum(p.stat().st_size for p in MODEL_DIR.glob("series.*"))
    assert size < 5_000_000
    labels = json.loads((MODEL_DIR / "labels.json").read_text())
    assert sorted(labels["classes"]) == sorted(SERIES)


def test_classifies_fresh_thumbnails(classifier: SeriesClassifier, fresh_thumbs: list[Thumb]) -> None:
    assert len(fresh_thumbs) >= 30
    guesses = classifier.classify_batch([t.image for t in fresh_thumbs])
    correct = sum(g.series == t.series for g, t in zip(guesses, fresh_thumbs, strict=True))
    assert correct / len(fresh_thumbs) >= 0.95, [
        (t.series, g) for g, t in zip(guesses, fresh_thumbs, strict=True) if g.series != t.series
    ]


def test_single_and_batch_agree(classifier: SeriesClassifier, fresh_thumbs: list[Thumb]) -> None:
    images = [t.image for t in fresh_thumbs[:5]]
    single = [classifier.classify(image) for image in images]
    batch = classifier.classify_batch(images)
    assert [g.series for g in single] == [g.series for g in batch]
    assert [g.confidence for g in single] == pytest.approx([g.confidence for g in batch], abs=1e-5)
    assert classifier.classify_batch([]) == []


def test_pictures_of_no_locomotive_get_no_series(classifier: SeriesClassifier) -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (240, 480, 3), dtype=np.uint8)
    grey = np.full((300, 500, 3), 128, np.uint8)
    for guess in classifier.classify_batch([noise, grey]):
        assert guess.series is None
        assert guess.confidence < classifier.threshold


def test_threshold_decides_between_a_series_and_none(fresh_thumbs: list[Thumb]) -> None:
    thumb = fresh_thumbs[0]
    lenient = SeriesClassifier(MODEL_DIR, threshold=0.0).classify(thumb.image)
    strict = SeriesClassifier(MODEL_DIR, threshold=1.0).classify(thumb.image)
    assert lenient.series == thumb.series
    # A softmax of a label-smoothed net never reaches 1.0, so the strictest threshold answers nothing.
    assert strict.series is None
    assert strict.confidence == pytest.approx(lenient.confidence, abs=1e-6)


def test_model_version(classifier: SeriesClassifier) -> None:
    assert classifier.model == "loco_model:1.0.0"


def test_grayscale_and_other_non_bgr_arrays_are_rejected(classifier: SeriesClassifier) -> None:
    with pytest.raises(BadThumbnail, match="H×W×3"):
        classifier.classify(np.zeros((100, 200), np.uint8))
    with pytest.raises(BadThumbnail, match="uint8"):
        classifier.classify(np.zeros((100, 200, 3), np.float32))
    with pytest.raises(BadThumbnail, match="empty"):
        classifier.classify(np.zeros((0, 200, 3), np.uint8))


def test_missing_ir_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "loco_model" / "9.9.9"
    with pytest.raises(RecognitionModelError, match=str(missing)):
        SeriesClassifier(missing)


@pytest.mark.parametrize("damage", ["no_labels", "bad_labels", "wrong_classes", "bad_xml"])
def test_broken_model_folder_fails_with_a_clear_error(tmp_path: Path, damage: str) -> None:
    model_dir = tmp_path / "1.0.0"
    shutil.copytree(MODEL_DIR, model_dir)
    labels = model_dir / "labels.json"
    if damage == "no_labels":
        labels.unlink()
    elif damage == "bad_labels":
        labels.write_text("{not json")
    elif damage == "wrong_classes":
        data = json.loads(labels.read_text())
        data["classes"] = data["classes"][:-1]
        labels.write_text(json.dumps(data))
    else:
        (model_dir / "series.xml").write_text("<net>")
    with pytest.raises(RecognitionModelError, match=r"1\.0\.0"):
        SeriesClassifier(model_dir)
