"""Painted faces of locomotive parts: livery, windows, grilles and the plate number.

Textures are drawn once per (series, plate, part, face, number paint) and cached; the renderer maps
them onto the projected faces. How a number is painted is sim/paint.py's job. Rectangles of painted
numbers are returned so datasets can label plates, and lamp centres so the renderer can make lit
lamps glare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from shared.frames import Frame
from sim.fleet import Box, Color, Series
from sim.paint import Spot, paint_number
from sim.scenario import NumberPaint

PX_PER_M = 60
TEXTURE_CACHE_SIZE = 512
GLASS: Color = (70, 58, 48)
UNDER: Color = (38, 38, 40)
DARK: Color = (22, 22, 24)
# A small number plate hangs this far under the cab window it is centred on.
PLAQUE_BELOW_WINDOW_M = 0.1


@dataclass(frozen=True)
class FaceTexture:
    """A texture, the rectangles (x, y, w, h) of painted numbers on it and the centres (x, y) of its
    lamps, in texture pixels."""

    image: Frame
    plates: list[tuple[int, int, int, int]] = field(default_factory=list)
    lamps: list[tuple[int, int]] = field(default_factory=list)


def _px(metres: float) -> int:
    return round(metres * PX_PER_M)


def _shade(color: Color, factor: float) -> Color:
    b, g, r = color
    return (int(min(255, b * factor)), int(min(255, g * factor)), int(min(255, r * factor)))


class _Canvas:
    """A face texture addressed in metres: x from the left edge, z as height above the rail."""

    def __init__(self, width_m: float, z0: float, z1: float, fill: Color) -> None:
        self.z1 = z1
        self.image: Frame = np.empty((max(_px(z1 - z0), 2), max(_px(width_m), 2), 3), np.uint8)
        self.image[:] = fill
        self.plates: list[tuple[int, int, int, int]] = []
        self.lamps: list[tuple[int, int]] = []

    def row(self, z: float) -> int:
        return _px(self.z1 - z)

    def rect(self, x0: float, x1: float, z0: float, z1: float, color: Color, thickness: int = -1) -> None:
        cv2.rectangle(self.image, (_px(x0), self.row(z1)), (_px(x1), self.row(z0)), color, thickness)

    def circle(self, x: float, z: float, radius: float, color: Color, thickness: int = -1) -> None:
        cv2.circle(self.image, (_px(x), self.row(z)), _px(radius), color, thickness, cv2.LINE_AA)

    def lamp(self, x: float, z: float, radius: float, color: Color) -> None:
        """A lamp: drawn, and its centre kept for the glare a lit one casts at night."""
        self.circle(x, z, radius, color)
        self.lamps.append((_px(x), self.row(z)))

    def number(
        self,
        plate: str,
        paint: NumberPaint,
        at: tuple[float, float],
        cap_m: float,
        plaque_at: tuple[float, float],
        color: Color,
        align_right: bool = False,
        stacked: bool = False,
    ) -> None:
        """The number starting at `at` (x, baseline z; ending there when `align_right`), or a small
        plate hung from `plaque_at` (centre x, top z) when that is the style."""
        spot = Spot(
            x=_px(at[0]),
            base=self.row(at[1]),
            cap=_px(cap_m),
            plaque_x=_px(plaque_at[0]),
            plaque_top=self.row(plaque_at[1]),
            px_per_m=PX_PER_M,
            align_right=align_right,
            stacked=stacked,
        )
        self.plates.append(paint_number(self.image, plate, paint, spot, color))

    def done(self) -> FaceTexture:
        return FaceTexture(self.image, self.plates, self.lamps)


@lru_cache(maxsize=TEXTURE_CACHE_SIZE)
def side_texture(
    series: Series,
    plate: str,
    box: Box,
    cab_left: bool,
    cab_right: bool,
    paint: NumberPaint,
) -> FaceTexture:
    """The long side of a part, as seen from outside (left = lower x of the viewer's view), its number
    painted in the style `paint`."""
    length = box.x1 - box.x0
    if box.part == "under":
        return _under_side(length)
    canvas = _Canvas(length, box.z0, box.z1, series.body if box.part != "gangway" else DARK)
    if box.part == "gangway":
        for x in np.arange(0.1, length, 0.12):
            canvas.rect(x, x + 0.03, box.z0, box.z1, (45, 45, 45))
        return canvas.done()
    canvas.rect(0, length, box.z1 - 0.12, box.z1, _shade(series.body, 0.7))
    canvas.rect(0, length, 2.0, 2.3, series.stripe)
    if box.part in ("hood", "body"):
        for x in np.arange(1.5, length - 1.5, 1.3):
            if not (cab_left and x < 4.0) and not (cab_right and x > length - 4.0):
                canvas.rect(x, x + 1.0, box.z0 + 0.3, box.z1 - 0.35, _shade(series.body, 0.8), 2)
    if box.part == "cab":
        canvas.rect(0.35, length - 0.35, 3.25, 4.1, GLASS)
        plaque = (length / 2, 3.25 - PLAQUE_BELOW_WINDOW_M)
        canvas.number(plate, paint, (0.3, 2.55), 0.3, plaque, series.lettering)
        return canvas.done()
    for at_left, present in ((True, cab_left), (False, cab_right)):
        if not present:
            continue
        x_win = 0.5 if at_left else length - 1.7
        canvas.rect(x_win, x_win + 1.2, 3.45, 4.2, GLASS)
        x_door = 1.9 if at_left else length - 2.6
        canvas.rect(x_door, x_door + 0.7, box.z0 + 0.15, 4.0, _shade(series.body, 0.6), 2)
        x_text = 0.45 if at_left else length - 0.45
        plaque = (x_win + 0.6, 3.45 - PLAQUE_BELOW_WINDOW_M)
        canvas.number(plate, paint, (x_text, 2.55), 0.3, plaque, series.lettering, align_right=not at_left)
    return canvas.done()


def _under_side(length: float) -> FaceTexture:
    canvas = _Canvas(length, 0.0, 1.25, UNDER)
    canvas.rect(0, length, 1.0, 1.25, _shade(UNDER, 1.5))
    for start in (0.9, length - 4.6):
        canvas.rect(start, start + 3.7, 0.3, 0.95, DARK)
        for axle in range(3):
            canvas.circle(start + 0.6 + axle * 1.25, 0.52, 0.5, (55, 55, 58), 3)
    if length > 14:
        canvas.rect(6.0, length - 6.0, 0.35, 0.95, (60, 60, 62))
    return canvas.done()


@lru_cache(maxsize=TEXTURE_CACHE_SIZE)
def end_texture(series: Series, plate: str, box: Box, cab: bool, paint: NumberPaint) -> FaceTexture:
    """An end face of a part; a cab end carries windows, headlight and the number painted in the style
    `paint`, an undercarriage end its buffer lamps."""
    width = 2 * box.half_width
    if box.part in ("under", "gangway"):
        canvas = _Canvas(width, box.z0, box.z1, UNDER if box.part == "under" else DARK)
        if box.part == "under":
            canvas.rect(0, width, 0.75, 1.1, (30, 30, 160))
            for x in (0.35, width - 0.35):
                canvas.lamp(x, 0.95, 0.18, (70, 70, 70))
        return canvas.done()
    canvas = _Canvas(width, box.z0, box.z1, series.body)
    canvas.rect(0, width, 2.0, 2.3, series.stripe)
    if cab:
        top = box.z1 - 0.25
        canvas.rect(0.15, width / 2 - 0.08, top - 0.75, top, GLASS)
        canvas.rect(width / 2 + 0.08, width - 0.15, top - 0.75, top, GLASS)
        canvas.lamp(width / 2, top + 0.12, 0.09, (200, 240, 250))
        cap = min(0.16, 0.9 * width / max(len(plate), 1) / 0.85)
        plaque = (width / 2, top - 0.75 - PLAQUE_BELOW_WINDOW_M)
        canvas.number(plate, paint, (0.2, 2.5), cap, plaque, series.lettering, stacked=True)
    return canvas.done()
