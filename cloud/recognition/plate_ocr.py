"""Reading painted numbers: PaddleOCR's PP-OCRv4 text detector and recogniser on OpenVINO.

The detector marks text as a probability map; each blob becomes a rotated box (expanded as PaddleOCR's
"unclip" does, since the map covers only the text's core), cut out upright with a perspective warp,
and read by the CTC recogniser. Reading is restricted to the characters plates use, so a Latin `O` is
never read as a look-alike from the 6,600-character dictionary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import openvino as ov
from openvino.preprocess import PrePostProcessor

from cloud.recognition.errors import BadThumbnail, RecognitionModelError
from shared.frames import Frame
from shared.openvino_model import compile_ir

# Characters a plate may carry (upper-case Latin look-alikes of Cyrillic series names, digits, dash).
PLATE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")
# The detector sees the thumbnail at its own size (scaled down only to fit) on a fixed canvas, height
# by width: a static shape runs ~15 % faster than a shape per picture, thumbnails are at most 640 px
# wide (edge config), the painted digits are 20+ px high in them, and this is ~4x cheaper than the
# 736 px minimum side PaddleOCR uses for documents.
DET_CANVAS = (448, 640)
DET_THRESHOLD = 0.3  # a pixel belongs to text above this probability
BOX_THRESHOLD = 0.5  # a box is kept when its mean text probability is above this
UNCLIP_RATIO = 1.6
MIN_BOX_SIDE_PX = 3
REC_HEIGHT = 48
REC_MAX_WIDTH = 320
MAX_BOXES = 8
MIN_LINE_ASPECT = 2.0
# f32: bf16 measured slower for these networks here (22.7 vs 14.8 ms for the detector at 640x384),
# its layout conversions costing more than the AMX units save.
PRECISION = "f32"


@dataclass(frozen=True)
class TextRead:
    """One text line found in an image."""

    text: str
    confidence: float  # mean probability of the characters read
    box: tuple[tuple[float, float], ...]  # corners in image pixels


class PlateReader:
    """Finds and reads text lines in thumbnails."""

    def __init__(self, model_dir: Path, device: str = "CPU", threads: int = 0) -> None:
        self._det = _compile(model_dir / "det.xml", device, threads, [1, 3, *DET_CANVAS])
        self._rec = _compile(model_dir / "rec.xml", device, threads)
        characters_path = model_dir / "characters.json"
        if not characters_path.is_file():
            raise RecognitionModelError(f"{characters_path} does not exist")
        self.characters: list[str] = ["<blank>", *json.loads(characters_path.read_text(encoding="utf-8"))]
        allowed = np.array([c in PLATE_ALPHABET for c in self.characters])
        allowed[0] = True
        self._allowed = allowed
        self.model = f"plate:{model_dir.name}"

    def read(self, image: Frame) -> list[TextRead]:
        """Every text line in a BGR image, most confident first."""
        _check(image)
        pairs = [(box, _upright(image, box)) for box in self._detect(image)]
        # A number is a line of 6+ characters: blobs no wider than twice their height (a bolt, a lamp,
        # one letter of a logo) are not worth the recogniser's time.
        pairs = [(box, crop) for box, crop in pairs if crop.shape[1] >= MIN_LINE_ASPECT * crop.shape[0]]
        boxes = [box for box, _ in pairs]
        crops = [crop for _, crop in pairs]
        reads = [
            TextRead(text, confidence, tuple((float(x), float(y)) for x, y in box))
            for box, (text, confidence) in zip(boxes, self._recognise(crops), strict=True)
            if text
        ]
        return sorted(reads, key=lambda r: -r.confidence)

    def _detect(self, image: Frame) -> list[npt.NDArray[np.float32]]:
        canvas, scale = det_canvas(image)
        probability = self._det(canvas[None])[0][0, 0]
        mask = cv2.dilate((probability > DET_THRESHOLD).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        scored = []
        for contour in contours:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if min(rw, rh) < MIN_BOX_SIDE_PX:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            inside = np.zeros((bh, bw), np.uint8)
            cv2.fillPoly(inside, [contour - [x, y]], 1)
            score = float(probability[y : y + bh, x : x + bw][inside.astype(bool)].mean())
            if score < BOX_THRESHOLD:
                continue
            grow = rw * rh * UNCLIP_RATIO / (2 * (rw + rh))
            corners = np.asarray(cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle)), np.float32)
            scored.append((score, corners / np.float32(scale)))
        return [box for _, box in sorted(scored, key=lambda s: -s[0])[:MAX_BOXES]]

    def _recognise(self, crops: Sequence[Frame]) -> list[tuple[str, float]]:
        if not crops:
            return []
        # Padded with mid-grey, which the normalisation maps to 0, as PaddleOCR pads.
        batch = np.full((len(crops), REC_HEIGHT, REC_MAX_WIDTH, 3), 128, np.uint8)
        for i, crop in enumerate(crops):
            ch, cw = crop.shape[:2]
            width = min(REC_MAX_WIDTH, max(16, int(np.ceil(REC_HEIGHT * cw / max(ch, 1)))))
            batch[i, :, :width] = cv2.resize(crop, (width, REC_HEIGHT))
        probabilities = self._rec(batch)[0] * self._allowed
        return [self._ctc(p) for p in probabilities]

    def _ctc(self, probabilities: npt.NDArray[np.float32]) -> tuple[str, float]:
        best = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        text, kept, previous = [], [], 0
        for index, p in zip(best, confidence, strict=True):
            if index != 0 and index != previous:
                text.append(self.characters[index])
                kept.append(float(p))
            previous = index
        return "".join(text), float(np.mean(kept)) if kept else 0.0


def _compile(xml: Path, device: str, threads: int, shape: list[int] | None = None) -> ov.CompiledModel:
    return compile_ir(
        xml,
        error=RecognitionModelError,
        what="OCR model",
        device=device,
        shape=shape,
        inference_precision=PRECISION,
        threads=threads or None,  # several recognisers share the cores: each keeps to its threads
        preprocess=_with_preprocessing,
    )


def _check(image: Frame) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadThumbnail(f"expected an 8-bit BGR image, got shape {image.shape} dtype {image.dtype}")


def det_canvas(image: Frame) -> tuple[Frame, float]:
    """The picture on the detector's fixed canvas (scaled down only to fit), and the scale used."""
    h, w = image.shape[:2]
    scale = min(1.0, DET_CANVAS[1] / w, DET_CANVAS[0] / h)
    nh, nw = max(1, int(h * scale)), max(1, int(w * scale))
    canvas = np.zeros((*DET_CANVAS, 3), np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh)) if scale < 1.0 else image
    return canvas, scale


def _with_preprocessing(model: ov.Model) -> ov.Model:
    """Feed u8 NHWC pictures; OpenVINO converts to CHW floats in [-1, 1], as PaddleOCR trained them."""
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(127.5).scale(127.5)
    return ppp.build()


def _upright(image: Frame, corners: npt.NDArray[np.float32]) -> Frame:
    """The box cut out and warped to an upright rectangle (text reading left to right)."""
    total, diff = corners.sum(axis=1), np.diff(corners, axis=1).ravel()
    tl, br = corners[np.argmin(total)], corners[np.argmax(total)]
    tr, bl = corners[np.argmin(diff)], corners[np.argmax(diff)]
    width = max(int(np.linalg.norm(tr - tl)), int(np.linalg.norm(br - bl)), 1)
    height = max(int(np.linalg.norm(bl - tl)), int(np.linalg.norm(br - tr)), 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    warp = cv2.getPerspectiveTransform(np.array([tl, tr, br, bl], np.float32), target)
    crop = cv2.warpPerspective(image, warp, (width, height), borderMode=cv2.BORDER_REPLICATE)
    if height > 1.5 * width:  # vertical text: turn it to read left to right
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop, dtype=np.uint8)
