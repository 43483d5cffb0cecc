"""Reading painted numbers: PaddleOCR's PP-OCRv4 text detector and recogniser on OpenVINO.

The detector marks text as a probability map; each blob becomes a rotated box (expanded as PaddleOCR's
"unclip" does, since the map covers only the text's core, and padded along the line so a tight box
never cuts the first or last character), cut out upright with a perspective warp, and read by the CTC
recogniser. Reading is restricted to the characters plates use, so a Latin `O` is never read as a
look-alike from the 6,600-character dictionary.

Small text (a cab's plate in a wide picture) may be missed at the detector's scale: `look_closer`
takes a second look at higher resolution, at the regions where the first look found text or a weak
trace of it (enlarged 2x and packed side by side on one canvas), or, for a picture shrunk to fit the
canvas, at tiles of it at twice that scale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt
import openvino as ov
from openvino.preprocess import PrePostProcessor

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
# A closer look: regions where the map shows at least this probability (a weak trace of text), no
# taller than this at the first look's scale (taller text was seen well enough: a closer look at a
# number cut by the picture's edge would not complete it)...
TRACE_THRESHOLD = 0.15
SMALL_TEXT_PX = 16
# ...and not where the first look read a long line this confidently (a camera's burnt-in clock, a
# slogan): small, but read, and no number.
CONFIDENT_READ = 0.95
LONG_READ = 18
# ...enlarged this much, with this much context (in text heights) around them, at most this many.
CLOSER_ZOOM = 2.0
CLOSER_TIMES = 4.0
CLOSER_CONTEXT = 1.5
MAX_CLOSER_REGIONS = 6
# A picture shrunk to fit is also looked at in tiles at this many times the first look's scale, which
# overlap by this share (text cut by one tile's edge is whole in the next), at most this many.
TILE_TIMES = 2.0
MAX_TILED_SCALE = 2 / 3  # a picture shrunk less gains too little from tiles at its own size
TILE_OVERLAP = 0.1
MAX_TILES = 6
MAX_CANVASES = 8
# f32: bf16 measured slower for these networks here (22.7 vs 14.8 ms for the detector at 640x384),
# its layout conversions costing more than the AMX units save.
PRECISION = "f32"


Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in picture pixels


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
        h, w = image.shape[:2]
        # Traces closer: CLOSER_TIMES the first look's scale, at most CLOSER_ZOOM times the picture's own.
        zoom = min(CLOSER_ZOOM, CLOSER_TIMES * scale)
        confident = [
            _extent(np.asarray(r.box))
            for r in reads
            if r.confidence >= CONFIDENT_READ and len(r.text) >= LONG_READ
        ]
        regions = [(region, zoom) for region in _traces(probability, scale, (w, h), confident)]
        if scale <= MAX_TILED_SCALE:  # text too small to leave a trace in a shrunk picture: all of it
            tile_zoom = min(1.0, TILE_TIMES * scale)
            regions += [(tile, tile_zoom) for tile in _tiles(w, h, tile_zoom)]
        return Look(reads, regions)

    def look_closer(self, image: Frame, first: Look) -> list[TextRead]:
        """The text in the first look's regions at higher resolution, most confident first (a box the
        first look read partly or wrongly is read again whole)."""
        boxes: list[npt.NDArray[np.float32]] = []
        for canvas, placed in _mosaics(image, first.regions):
            probability = self._det(canvas[None])[0][0, 0]
            for box in _boxes(probability):
                p = _placement_of(box.mean(axis=0), placed)
                if p is None:
                    continue
                boxes.append(
                    (box - np.array([p.x, p.y], np.float32)) / p.zoom + np.array([p.x0, p.y0], np.float32)
                )
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


def _traces(
    probability: npt.NDArray[np.float32], scale: float, size: tuple[int, int], read: list[Region]
) -> list[Region]:
    """Regions of a picture of `size` (in its pixels; the map at `scale`) where the map shows small text
    or a trace of it that no box in `read` covers, with context around, the most probable first,
    overlapping ones merged."""
    w, h = size
    mask = (probability > TRACE_THRESHOLD).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    scored = []
    for label in range(1, count):
        x, y, bw, bh, _area = stats[label]
        trace = (int(x / scale), int(y / scale), int((x + bw) / scale), int((y + bh) / scale))
        if min(bw, bh) > SMALL_TEXT_PX or any(_covers(box, trace) for box in read):
            continue
        margin = CLOSER_CONTEXT * max(min(bw, bh), MIN_BOX_SIDE_PX)
        region = (
            int(max(0, (x - margin) / scale)),
            int(max(0, (y - margin) / scale)),
            int(min(w, (x + bw + margin) / scale)),
            int(min(h, (y + bh + margin) / scale)),
        )
        peak = float(probability[y : y + bh, x : x + bw][labels[y : y + bh, x : x + bw] == label].max())
        scored.append((peak, region))
    merged: list[Region] = []
    for _, region in sorted(scored, key=lambda s: -s[0]):
        for i, other in enumerate(merged):
            overlap_x = region[0] < other[2] and other[0] < region[2]
            if overlap_x and region[1] < other[3] and other[1] < region[3]:
                merged[i] = (
                    min(region[0], other[0]),
                    min(region[1], other[1]),
                    max(region[2], other[2]),
                    max(region[3], other[3]),
                )
                break
        else:
            merged.append(region)
    return merged[:MAX_CLOSER_REGIONS]


def _extent(box: npt.NDArray[np.float32]) -> Region:
    return int(box[:, 0].min()), int(box[:, 1].min()), int(box[:, 0].max()), int(box[:, 1].max())


def _covers(read: Region, trace: Region) -> bool:
    """Whether a read's box covers most of a trace."""
    w = min(read[2], trace[2]) - max(read[0], trace[0])
    h = min(read[3], trace[3]) - max(read[1], trace[1])
    return w > 0 and h > 0 and w * h >= 0.5 * (trace[2] - trace[0]) * (trace[3] - trace[1])


def _tiles(w: int, h: int, zoom: float) -> list[Region]:
    """Overlapping tiles covering a w x h picture, each filling the detector's canvas at `zoom`."""
    tile_w, tile_h = int(DET_CANVAS[1] / zoom), int(DET_CANVAS[0] / zoom)
    columns = max(1, int(np.ceil(w / ((1 - TILE_OVERLAP) * tile_w)))) if w > tile_w else 1
    rows = max(1, int(np.ceil(h / ((1 - TILE_OVERLAP) * tile_h)))) if h > tile_h else 1
    xs = np.linspace(0, max(0, w - tile_w), columns).astype(int)
    ys = np.linspace(0, max(0, h - tile_h), rows).astype(int)
    tiles = [(int(x), int(y), int(min(w, x + tile_w)), int(min(h, y + tile_h))) for y in ys for x in xs]
    return tiles[:MAX_TILES]


class _Placed(NamedTuple):
    """Where a region went on a mosaic canvas: canvas x, y, size, its corner in the picture, its zoom."""

    x: int
    y: int
    w: int
    h: int
    x0: int
    y0: int
    zoom: float


def _mosaics(image: Frame, regions: list[tuple[Region, float]]) -> list[tuple[Frame, list[_Placed]]]:
    """The regions enlarged by their zoom, packed row by row onto detector canvases (at most
    MAX_CANVASES)."""
    height, width = DET_CANVAS
    mosaics: list[tuple[Frame, list[_Placed]]] = []
    x = y = row = 0
    for (x0, y0, x1, y1), zoom in regions:
        part = cv2.resize(image[y0:y1, x0:x1], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        part = part[:height, :width]
        ph, pw = part.shape[:2]
        if mosaics and x + pw > width:  # the next row
            x, y, row = 0, y + row, 0
        if not mosaics or y + ph > height:  # the next canvas
            if len(mosaics) == MAX_CANVASES:
                break
            mosaics.append((np.zeros((height, width, 3), np.uint8), []))
            x = y = row = 0
        canvas, placed = mosaics[-1]
        canvas[y : y + ph, x : x + pw] = part
        placed.append(_Placed(x, y, pw, ph, x0, y0, zoom))
        x, row = x + pw, max(row, ph)
    return mosaics


def _placement_of(centre: npt.NDArray[np.float32], placed: list[_Placed]) -> _Placed | None:
    """The region that holds a canvas point."""
    for p in placed:
        if p.x <= centre[0] < p.x + p.w and p.y <= centre[1] < p.y + p.h:
            return p
    return None


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
