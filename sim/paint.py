"""Painting a locomotive's number onto a face texture in one of the styles depots use.

`classic` is the simulator's original rendering and stays pixel-identical (trained models and tests
rely on it). The other styles keep its place and cap height on the face (a small plate hangs under the
cab window instead) so that only the look of the number changes. Random details (fading, dirt, the plate's
colours) are drawn from stable hashes of the plate, never from Python's salted hash(), so every process
paints the same texture.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from shared.frames import Frame
from sim.fleet import Color
from sim.scenario import NumberPaint

Rect = tuple[int, int, int, int]  # x, y, w, h in texture pixels
Alpha = npt.NDArray[np.float32]

CLASSIC_FONT = cv2.FONT_HERSHEY_DUPLEX
# The styles `varied` picks from, by a stable hash of the plate.
DRAWN_STYLES = (
    NumberPaint.CLASSIC,
    NumberPaint.STENCIL,
    NumberPaint.GROUPS,
    NumberPaint.SMALL_PLATE,
    NumberPaint.FADED,
)
# New styles are drawn this many times finer and area-averaged: a stencil's bridges and a small plate's
# strokes are thinner than a texture pixel at 60 px/m.
SUPERSAMPLE = 4
# Stencils: the classic face, each character cut on its own plate and so set a little apart (of the cap),
# with bridges this wide (of the cap) across the strokes. Bridges cut only strokes that run across them:
# an opening with a line longer than the face's stems (about 0.28 of the cap in OpenCV 5's bold outline
# face) keeps those.
STENCIL_FONT = CLASSIC_FONT
STENCIL_SPACING = 0.12
STENCIL_BRIDGE = 0.12
STENCIL_STEM = 0.28
# Series and number painted apart: the space set between them, in digit advances. With the glyphs' own
# side bearings the gap between the painted groups is about 1.1 digits (depots leave 0.8-1.5).
GROUP_GAP_DIGITS = 0.8
# Two lines on the cab front: the series' baseline this many caps above the number's.
GROUP_LINE_STEP = 1.5
# A Hershey capital or digit is 21 of the 27 units that getTextSize reports as the text's height.
HERSHEY_CAP_SHARE = 21 / 27
# A cast or enamelled plate's digits are 0.10-0.14 m high; at 0.14 m they are 8 px high in the example
# depot's thumbnails (640 px wide crops) where a locomotive is nearest the camera, 7 px a little further.
PLAQUE_DIGIT_M = 0.14
PLAQUE_FONT = cv2.FONT_HERSHEY_SIMPLEX  # a lighter weight than the painted numbers: cast, not painted
PLAQUE_PAD = 0.45  # margin around the lettering, of the digits' height
PLAQUE_LIGHT = ((205, 215, 222), (28, 28, 30))  # (plaque, lettering): cream with black digits ...
PLAQUE_DARK = ((34, 34, 38), (225, 230, 232))  # ... or black with white ones
# Faded paint keeps this share of the classic contrast against the body.
FADED_CONTRAST = (0.35, 0.7)
FADED_WORN_SHARE = 0.18  # of the lettering's area, where the paint has flaked off ...
FADED_WORN_LEFT = 0.3  # ... leaving this much of it
SOOT: Color = (30, 32, 34)
RUST: Color = (38, 74, 120)


@dataclass(frozen=True)
class Spot:
    """Where a face carries its number, in texture pixels (x to the right, y down).

    A painted number starts at `x` (ends there when `align_right`) on the baseline `base` with cap
    height `cap`; a small plate hangs instead centred on `plaque_x` with its top at `plaque_top`
    (under the cab window). `px_per_m` sizes what is fixed in metres, the plate's lettering. On a cab
    front (`stacked`) the series and the number painted apart go on two lines.
    """

    x: int
    base: int
    cap: int
    plaque_x: int
    plaque_top: int
    px_per_m: int
    align_right: bool = False
    stacked: bool = False


def style_of(paint: NumberPaint, plate: str) -> NumberPaint:
    """The style a locomotive's number is painted in: `varied` picks one per plate, stably."""
    if paint is not NumberPaint.VARIED:
        return paint
    return DRAWN_STYLES[zlib.crc32(plate.encode()) % len(DRAWN_STYLES)]


def paint_number(image: Frame, plate: str, paint: NumberPaint, spot: Spot, colour: Color) -> Rect:
    """Paint `plate` onto `image` at `spot`; returns the rectangle that covers all of it."""
    style = style_of(paint, plate)
    if style is NumberPaint.CLASSIC:
        return _classic(image, plate, spot.x, spot.base, spot.cap, colour, spot.align_right)
    if style is NumberPaint.STENCIL:
        return _stencil(image, plate, spot, colour)
    if style is NumberPaint.GROUPS:
        return _groups(image, plate, spot, colour)
    if style is NumberPaint.SMALL_PLATE:
        return _plaque(image, plate, spot)
    return _faded(image, plate, spot, colour)


# -- the styles ---------------------------------------------------------------------------------------


def _classic_size(text: str, cap: int) -> tuple[float, int, int, int]:
    """Scale, stroke and (w, h) of text in the classic face with cap height `cap`."""
    (_w1, h1), _ = cv2.getTextSize(text, CLASSIC_FONT, 1.0, 2)
    scale = cap / h1
    thickness = _thickness(scale)
    (w, h), _ = cv2.getTextSize(text, CLASSIC_FONT, scale, thickness)
    return scale, thickness, w, h


def _classic(
    image: Frame, text: str, x: int, base: int, cap: int, colour: Color, align_right: bool = False
) -> Rect:
    scale, thickness, w, h = _classic_size(text, cap)
    left = x - w if align_right else x
    cv2.putText(image, text, (left, base), CLASSIC_FONT, scale, colour, thickness, cv2.LINE_AA)
    return _padded(left, base, w, h)


def _groups(image: Frame, plate: str, spot: Spot, colour: Color) -> Rect:
    series, number = plate.rsplit("-", 1)
    _, _, ws, _ = _classic_size(series, spot.cap)
    _, _, wn, _ = _classic_size(number, spot.cap)
    if spot.stacked:
        step = round(GROUP_LINE_STEP * spot.cap)
        rects = [
            _classic(image, series, spot.x, spot.base - step, spot.cap, colour),
            _classic(image, number, spot.x, spot.base, spot.cap, colour),
        ]
    else:
        digit = _classic_size("0", spot.cap)[2]
        gap = round(GROUP_GAP_DIGITS * digit)
        left = spot.x - (ws + gap + wn) if spot.align_right else spot.x
        rects = [
            _classic(image, series, left, spot.base, spot.cap, colour),
            _classic(image, number, left + ws + gap, spot.base, spot.cap, colour),
        ]
    return _union(rects)


def _stencil(image: Frame, plate: str, spot: Spot, colour: Color) -> Rect:
    letters = _Letters.laid_out(plate, STENCIL_FONT, spot.cap, STENCIL_SPACING * spot.cap)
    left = spot.x - letters.width if spot.align_right else spot.x
    rect = _padded(left, spot.base, letters.width, spot.cap)
    roi = _clip(image, rect)
    _blend(image, roi, letters.coverage(roi, (left, spot.base), bridged=True), colour)
    return rect


def _plaque(image: Frame, plate: str, spot: Spot) -> Rect:
    digit = PLAQUE_DIGIT_M * spot.px_per_m
    letters = _Letters.laid_out(plate, PLAQUE_FONT, digit / HERSHEY_CAP_SHARE)
    h, pad = round(digit), round(PLAQUE_PAD * digit)
    rect = (spot.plaque_x - letters.width // 2 - pad, spot.plaque_top, letters.width + 2 * pad, h + 2 * pad)
    ground, lettering = PLAQUE_DARK if zlib.crc32(plate.encode()) & 1 else PLAQUE_LIGHT
    x, y, rw, rh = rect
    cv2.rectangle(image, (x, y), (x + rw - 1, y + rh - 1), ground, -1)
    cv2.rectangle(image, (x, y), (x + rw - 1, y + rh - 1), lettering, 1)
    roi = _clip(image, rect)
    _blend(image, roi, letters.coverage(roi, (x + pad, y + pad + h)), lettering)
    return rect


def _faded(image: Frame, plate: str, spot: Spot, colour: Color) -> Rect:
    scale, thickness, w, h = _classic_size(plate, spot.cap)
    left = spot.x - w if spot.align_right else spot.x
    rect = _padded(left, spot.base, w, h)
    # Dirt reaches beyond the lettering, streaks mostly below it (rain runs down the side).
    x, y, rw, rh = rect
    roi = _clip(image, (x - spot.cap, y - spot.cap // 2, rw + 2 * spot.cap, rh + 2 * spot.cap))
    rx, ry, roi_w, roi_h = roi
    if roi_w <= 0 or roi_h <= 0:
        return rect
    rng = np.random.default_rng([zlib.crc32(plate.encode()), spot.x, spot.base, 41])
    mask = np.zeros((roi_h, roi_w), np.uint8)
    cv2.putText(mask, plate, (left - rx, spot.base - ry), CLASSIC_FONT, scale, 255, thickness, cv2.LINE_AA)
    alpha = mask.astype(np.float32) * np.float32(rng.uniform(*FADED_CONTRAST) / 255)
    wear = _smooth_noise(rng, (roi_h, roi_w), max(2, spot.cap // 4))
    alpha[wear > np.quantile(wear, 1 - FADED_WORN_SHARE)] *= np.float32(FADED_WORN_LEFT)
    _blend(image, roi, alpha, colour)
    _blend(image, roi, _blotches(rng, roi_w, roi_h, spot.cap), SOOT)
    _blend(image, roi, _blotches(rng, roi_w, roi_h, spot.cap), RUST)
    _blend(image, roi, _streaks(rng, roi_w, roi_h, spot.cap), SOOT)
    return rect


# -- drawing helpers ----------------------------------------------------------------------------------


def _padded(left: int, base: int, w: int, h: int) -> Rect:
    """The number's rectangle as the classic face has always labelled it: the text and a margin."""
    pad = max(2, h // 5)
    return (left - pad, base - h - pad, w + 2 * pad, h + 2 * pad)


def _union(rects: list[Rect]) -> Rect:
    x0 = min(r[0] for r in rects)
    y0 = min(r[1] for r in rects)
    x1 = max(r[0] + r[2] for r in rects)
    y1 = max(r[1] + r[3] for r in rects)
    return (x0, y0, x1 - x0, y1 - y0)


def _clip(image: Frame, rect: Rect) -> Rect:
    """`rect` cut to the image (w or h 0 when outside)."""
    x, y, w, h = rect
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, image.shape[1]), min(y + h, image.shape[0])
    return (x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))


def _thickness(scale: float) -> int:
    """The classic stroke for a font scale. OpenCV 4 draws Hershey strokes that many pixels thick;
    OpenCV 5 draws these fonts as outlines, one weight bolder from a thickness of 2 on."""
    return max(2, round(scale * 2))


@dataclass(frozen=True)
class _Letters:
    """Text laid out character by character, SUPERSAMPLE times finer than the texture."""

    text: str
    font: int
    scale: float
    thickness: int
    cap: float  # in fine pixels
    boxes: list[tuple[int, int]]  # each character's left end and width, from the text's left end

    @classmethod
    def laid_out(cls, text: str, font: int, cap: float, spacing: float = 0.0) -> _Letters:
        """`text` with cap height `cap` texture pixels (as getTextSize measures it, like the classic
        face), characters `spacing` texture pixels apart beyond their own advance."""
        (_w, h1), _ = cv2.getTextSize(text, font, 1.0, 1)
        scale = SUPERSAMPLE * cap / h1
        thickness = SUPERSAMPLE * _thickness(scale / SUPERSAMPLE)
        boxes, x = [], 0
        for char in text:
            (w, _h), _ = cv2.getTextSize(char, font, scale, thickness)
            boxes.append((x, w))
            x += w + round(SUPERSAMPLE * spacing)
        return cls(text, font, scale, thickness, SUPERSAMPLE * cap, boxes)

    @property
    def width(self) -> int:
        """Width in texture pixels."""
        left, w = self.boxes[-1]
        return -(-(left + w) // SUPERSAMPLE)

    def coverage(self, roi: Rect, origin: tuple[int, int], bridged: bool = False) -> Alpha:
        """Coverage (0..1) over `roi` of the text with its baseline's left end at `origin` (texture
        pixels), with a stencil's bridges cut when `bridged`."""
        rx, ry, w, h = roi
        if not (w and h):
            return np.zeros((h, w), np.float32)
        fine = np.zeros((h * SUPERSAMPLE, w * SUPERSAMPLE), np.uint8)
        x0, base = (origin[0] - rx) * SUPERSAMPLE, (origin[1] - ry) * SUPERSAMPLE
        for char, (left, _w) in zip(self.text, self.boxes, strict=True):
            cv2.putText(fine, char, (x0 + left, base), self.font, self.scale, 255, self.thickness, cv2.LINE_8)
        if bridged:
            self._cut_bridges(fine, x0)
        small = cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA)
        return np.asarray(small, np.float32) * np.float32(1 / 255)

    def _cut_bridges(self, fine: npt.NDArray[np.uint8], x0: int) -> None:
        """Cut a stencil's bridges: a stencil holds the island inside a closed letter (0, 4, 6, 8, 9, A,
        B, D ...) by bridges, so each character with a hole is cut once, across the strokes that run
        crosswise at its centre line; one without (1, 2, 3, 5, 7, E, T ...) is one piece of plate
        and stays whole."""
        band = max(1, round(STENCIL_BRIDGE * self.cap))
        line = 2 * round(0.7 * STENCIL_STEM * self.cap) + 1
        lying = cv2.morphologyEx(fine, cv2.MORPH_OPEN, np.ones((1, line), np.uint8))
        for char, (left, w) in zip(self.text, self.boxes, strict=True):
            glyph = fine[:, max(x0 + left, 0) : max(x0 + left + w, 0)]
            if not char.isalnum() or not _has_hole(glyph):
                continue
            centre = x0 + left + w // 2
            cols = slice(max(centre - band // 2, 0), max(centre + band - band // 2, 0))
            fine[:, cols][lying[:, cols] > 0] = 0


def _has_hole(glyph: npt.NDArray[np.uint8]) -> bool:
    """Whether a drawn glyph encloses a counter (a contour inside another)."""
    if not glyph.size:
        return False
    _, hierarchy = cv2.findContours((glyph > 127).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def _blend(image: Frame, roi: Rect, alpha: Alpha, colour: Color) -> None:
    """Paint `colour` over `roi` of `image` with coverage `alpha`."""
    x, y, w, h = roi
    if not (w and h):
        return
    patch = image[y : y + h, x : x + w].astype(np.float32)
    a = alpha[..., None]
    paint = np.array(colour, np.float32)
    image[y : y + h, x : x + w] = np.rint(patch * (1 - a) + paint * a).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> Alpha:
    coarse = rng.random((shape[0] // cell + 2, shape[1] // cell + 2)).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), np.float32)


def _blotches(rng: np.random.Generator, w: int, h: int, cap: int) -> Alpha:
    """Soft patches of grime, some over the lettering."""
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.uniform(0.2, 0.7) * cap) + 1, int(rng.uniform(0.15, 0.5) * cap) + 1)
        level = float(rng.uniform(0.25, 0.6))
        cv2.ellipse(layer, centre, axes, float(rng.uniform(0, 180)), 0, 360, level, -1)
    return np.asarray(cv2.GaussianBlur(layer, (0, 0), max(1.0, cap / 6)), np.float32)


def _streaks(rng: np.random.Generator, w: int, h: int, cap: int) -> Alpha:
    """Thin runs of dirt down the side from the lettering's height."""
    layer = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(3, 8))):
        x = int(rng.integers(0, w))
        top = int(rng.integers(0, max(1, h // 2)))
        length = int(rng.uniform(0.8, 2.5) * cap)
        cv2.line(layer, (x, top), (x, min(h - 1, top + length)), float(rng.uniform(0.2, 0.45)), 1)
    return np.asarray(cv2.GaussianBlur(layer, (0, 0), 0.7), np.float32)
