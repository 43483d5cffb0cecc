"""The locomotive series classifier ("model estimator") on OpenVINO.

A thumbnail of a locomotive's side (BGR, any size) is letterboxed to the network's fixed input and
classified into one of the fleet's series. The IR takes raw u8 NHWC pixels and returns softmax
probabilities; scaling happens inside the IR, so `letterbox` here is the whole pre-processing and the
training pipeline (`training/recognition/series_train.py`) uses this very function.

A model folder holds `series.xml`/`series.bin` and `labels.json`, which names the classes in output
order, the input size and the model's name and version.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import openvino as ov

from cloud.recognition.errors import BadThumbnail, RecognitionModelError
from shared.openvino_model import compile_ir

MODEL_XML = "series.xml"
LABELS_JSON = "labels.json"
# Letterbox borders are black: the same value in training and at run time is all that matters.
PAD_VALUE = 0
# Largest batch sent to one inference call; bigger requests are split to bound memory.
MAX_BATCH = 64
# Thumbnails bigger than this are not thumbnails; refuse them before resizing gigapixels.
MAX_SIDE_PX = 8192


@dataclass(frozen=True)
class SeriesGuess:
    """The classifier's answer: a series name, or None when it is not confident enough."""

    series: str | None
    confidence: float


def letterbox(image: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Scale a BGR image to fit height×width keeping its aspect ratio, centred on a black canvas."""
    check_image(image)
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w = min(width, max(1, round(w * scale)))
    new_h = min(height, max(1, round(h * scale)))
    if (new_w, new_h) == (w, h):
        resized = image
    else:
        # INTER_AREA averages when shrinking (no aliasing of the thin stripes); linear when enlarging.
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = np.asarray(cv2.resize(image, (new_w, new_h), interpolation=interpolation), np.uint8)
    canvas = np.full((height, width, 3), PAD_VALUE, np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def check_image(image: object) -> None:
    """Raise BadThumbnail unless `image` is a non-empty H×W×3 uint8 array."""
    if not isinstance(image, np.ndarray):
        raise BadThumbnail(f"a thumbnail must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise BadThumbnail(f"a thumbnail must be a BGR H×W×3 array, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise BadThumbnail(f"a thumbnail must be uint8, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadThumbnail(f"a thumbnail must not be empty, got shape {image.shape}")
    if max(image.shape[:2]) > MAX_SIDE_PX:
        raise BadThumbnail(f"a thumbnail must be at most {MAX_SIDE_PX} px a side, got shape {image.shape}")


class SeriesClassifier:
    """Locomotive series from a side thumbnail, on OpenVINO IR."""

    def __init__(
        self, model_dir: Path, *, threshold: float = 0.6, device: str = "CPU", threads: int = 0
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        xml = model_dir / MODEL_XML
        labels_path = model_dir / LABELS_JSON
        if not labels_path.is_file():
            raise RecognitionModelError(f"series model file {labels_path} does not exist")
        labels = _read_labels(labels_path)
        self.classes: tuple[str, ...] = tuple(labels["classes"])
        self.height: int = labels["input"]["height"]
        self.width: int = labels["input"]["width"]
        self._model = f"{labels['name']}:{labels['version']}"
        self.threshold = threshold
        self._compiled = compile_ir(
            xml,
            error=RecognitionModelError,
            what="series model",
            device=device,
            shape=[-1, self.height, self.width, 3],
            # f32 explicitly: the CPU would pick bf16 on AMX and shift the confidences against the threshold.
            inference_precision="f32",
            threads=threads or None,  # several recognisers share the cores: each keeps to its threads
            check=lambda model: _check_signature(model, xml, self.height, self.width, len(self.classes)),
        )
        self.device = device
        # One request reused under a lock: creating one per call costs more than the inference itself.
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """Name and version of the model, e.g. 'loco_model:1.0.0'."""
        return self._model

    def classify(self, image: npt.NDArray[np.uint8]) -> SeriesGuess:
        """The series of one BGR thumbnail."""
        return self.classify_batch([image])[0]

    def classify_batch(self, images: Sequence[npt.NDArray[np.uint8]]) -> list[SeriesGuess]:
        """The series of each BGR thumbnail, in order."""
        probs = self.probabilities(images)
        guesses = []
        for row in probs:
            best = int(np.argmax(row))
            confidence = float(row[best])
            guesses.append(
                SeriesGuess(self.classes[best] if confidence >= self.threshold else None, confidence)
            )
        return guesses

    def probabilities(self, images: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """Class probabilities N×classes, columns in the order of `classes`."""
        batch = np.stack([letterbox(image, self.height, self.width) for image in images]) if images else None
        if batch is None:
            return np.zeros((0, len(self.classes)), np.float32)
        parts = []
        with self._lock:
            for start in range(0, len(batch), MAX_BATCH):
                out = self._request.infer({0: batch[start : start + MAX_BATCH]})[0]
                parts.append(np.array(out, np.float32))
        return np.concatenate(parts)


def _read_labels(path: Path) -> dict[str, Any]:
    """labels.json, checked: the classes, the input size, the model's name and version."""
    try:
        labels = json.loads(path.read_text())
        classes = labels["classes"]
        height, width = labels["input"]["height"], labels["input"]["width"]
        name, version = labels["name"], labels["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecognitionModelError(f"invalid series labels {path}: {exc!r}") from exc
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise RecognitionModelError(f"invalid series labels {path}: 'classes' must be a list of names")
    if len(set(classes)) != len(classes):
        raise RecognitionModelError(f"invalid series labels {path}: duplicate class names")
    if not all(isinstance(v, int) and v > 0 for v in (height, width)):
        raise RecognitionModelError(f"invalid series labels {path}: input height and width must be positive")
    if not (isinstance(name, str) and isinstance(version, str)):
        raise RecognitionModelError(f"invalid series labels {path}: name and version must be strings")
    return dict(labels)


def _check_signature(model: ov.Model, xml: Path, height: int, width: int, classes: int) -> None:
    """The IR must take u8 N×H×W×3 thumbnails and give N×classes probabilities."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise RecognitionModelError(f"{xml}: expected one input and one output")
    shape = model.input(0).get_partial_shape()
    expected = [height, width, 3]
    if shape.rank.get_length() != 4 or [d.get_length() for d in list(shape)[1:]] != expected:
        raise RecognitionModelError(f"{xml}: input shape {shape} is not [N, {height}, {width}, 3]")
    if model.input(0).get_element_type() != ov.Type.u8:
        raise RecognitionModelError(f"{xml}: input must be u8, is {model.input(0).get_element_type()}")
    out = model.output(0).get_partial_shape()
    if out.rank.get_length() != 2 or out[1].get_length() != classes:
        raise RecognitionModelError(
            f"{xml}: output shape {out} is not [N, {classes}] (classes in labels.json)"
        )
