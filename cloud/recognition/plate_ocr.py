"""Reading painted numbers: PaddleOCR's PP-OCRv4 text detector and recogniser on OpenVINO.

The detector marks text as a probability map; each blob becomes a rotated box (expanded as PaddleOCR's
"unclip" does, since the map covers only the text's core, and padded along the line so a tight box
never cuts the first or last character), cut out upright with a perspective warp, and read by the CTC
recogniser. Reading is restricted to the characters plates use, so a Latin `O` is never read as a
look-alike from the 6,600-character dictionary.

Small text (a cab's plate in a wide picture) may be missed at the detector's scale: `look_closer`
takes a second look at higher resolution where closer_look says: the regions where the first look
found small text or a weak trace of it, and tiles of a picture shrunk to fit the canvas.
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

from cloud.recognition.closer_look import Region, closer_regions, mosaics, placement_of
from cloud.recognition.errors import BadThumbnail, RecognitionModelError
from cloud.recognition.line_assembly import TextRead
from shared.frames import Frame
from shared.openvino_model import compile_ir

# Characters a plate may carry (upper-case Latin look-alikes of Cyrillic series names, digits, dash),
# and the space: a gap between groups in one box ("2M62 4658") is where a dash may have been dropped.
PLATE_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789- ")
# The detector sees the thumbnail at its own size (scaled down only to fit) on a fixed canvas, height
# by width: a static shape runs ~15 % faster than a shape per picture, thumbnails are at most 640 px
# wide (edge config), the painted digits are 20+ px high in them, and this is ~4x cheaper than the
# 736 px minimum side PaddleOCR uses for documents.
DET_CANVAS = (448, 640)
DET_THRESHOLD = 0.3  # a pixel belongs to text above this probability
BOX_THRESHOLD = 0.5  # a box is kept when its mean text probability is above this
UNCLIP_RATIO = 1.6
MIN_BOX_SIDE_PX = 3
# A box at least this much wider than tall may hold a number (two digits or more); squarer blobs (a
# bolt, a lamp, one letter of a logo) are not worth the recogniser's time.
MIN_LINE_ASPECT = 1.2
# Each box is padded by this share of its height at both ends of the line: the detector's box is often
# tight at an edge, and a lost first or last digit is a wrong number.
LINE_PAD = 0.25
REC_HEIGHT = 48
REC_MAX_WIDTH = 320
REC_WIDTH_STEP = 64
MAX_BOXES = 12
# f32: bf16 measured slower for these networks here (22.7 vs 14.8 ms for the detector at 640x384),
# its layout conversions costing more than the AMX units save.
PRECISION = "f32"


@dataclass(frozen=True)
class Look:
    """What one look at a picture found: the text read, and where a closer look may find more
    (regions, each with the zoom to look at it)."""

    reads: list[TextRead]
    regions: list[tuple[Region, float]]


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
        """Every text box in a BGR image, most confident first (the first look only)."""
        return self.look(image).reads

    def look(self, image: Frame) -> Look:
        """The first look: the picture on the detector's canvas at its own size (or shrunk to fit)."""
        _check(image)
        canvas, scale = det_canvas(image)
        probability = self._det(canvas[None])[0][0, 0]
        boxes = [box / np.float32(scale) for box in _boxes(probability)]
        reads = self._read_boxes(image, boxes)
        size = (image.shape[1], image.shape[0])
        return Look(reads, closer_regions(probability, scale, size, reads, DET_CANVAS))

    def look_closer(self, image: Frame, first: Look) -> list[TextRead]:
        """The text in the first look's regions at higher resolution, most confident first (a box the
        first look read partly or wrongly is read again whole)."""
        boxes: list[npt.NDArray[np.float32]] = []
        for canvas, placed in mosaics(image, first.regions, DET_CANVAS):
            probability = self._det(canvas[None])[0][0, 0]
            for box in _boxes(probability):
                p = placement_of(box.mean(axis=0), placed)
                if p is not None:
                    boxes.append(p.to_picture(box))
        return self._read_boxes(image, boxes)

    def _read_boxes(self, image: Frame, boxes: list[npt.NDArray[np.float32]]) -> list[TextRead]:
        crops = [upright(image, box) for box in boxes]
        reads = [
            TextRead(text, confidence, tuple((float(x), float(y)) for x, y in box))
            for box, (text, confidence) in zip(boxes, self.recognise(crops), strict=True)
            if text
        ]
        return sorted(reads, key=lambda r: -r.confidence)

    def recognise(self, crops: Sequence[Frame]) -> list[tuple[str, float]]:
        """What each upright text crop reads, with the mean probability of its characters."""
        if not crops:
            return []
        widths = [
            min(REC_MAX_WIDTH, max(16, int(np.ceil(REC_HEIGHT * cw / max(ch, 1)))))
            for ch, cw in (crop.shape[:2] for crop in crops)
        ]
        # As wide as the widest line (a step of REC_WIDTH_STEP, so few shapes recur): the recogniser's
        # cost grows with the width, and most lines are short. Padded with mid-grey, which the
        # normalisation maps to 0, as PaddleOCR pads.
        batch_width = min(REC_MAX_WIDTH, -(-max(widths) // REC_WIDTH_STEP) * REC_WIDTH_STEP)
        batch = np.full((len(crops), REC_HEIGHT, batch_width, 3), 128, np.uint8)
        for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
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
        return " ".join("".join(text).split()), float(np.mean(kept)) if kept else 0.0


def _boxes(probability: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Text boxes (4 corners, detector pixels) in a probability map, most probable first."""
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
        rw, rh = rw + 2 * grow, rh + 2 * grow
        pad = 2 * LINE_PAD * min(rw, rh)
        size = (rw + pad, rh) if rw >= rh else (rw, rh + pad)
        if max(size) < MIN_LINE_ASPECT * min(size):
            continue
        scored.append((score, np.asarray(cv2.boxPoints(((cx, cy), size, angle)), np.float32)))
    return [box for _, box in sorted(scored, key=lambda s: -s[0])[:MAX_BOXES]]


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


def upright(image: Frame, corners: npt.NDArray[np.float32]) -> Frame:
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
