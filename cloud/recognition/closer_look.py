"""Where to take a closer look at a picture, and how: the regions where the first look saw small text
or a trace of it (enlarged, with context), tiles of a picture shrunk to fit the detector's canvas, and
mosaics that pack them onto detector canvases (pure geometry; plate_ocr runs the networks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import numpy.typing as npt

from cloud.recognition.line_assembly import TextRead
from shared.frames import Frame

Region = tuple[int, int, int, int]  # x0, y0, x1, y1 in picture pixels

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
MIN_TRACE_PX = 3  # context is measured from at least this height
MAX_CLOSER_REGIONS = 6
# A picture shrunk to fit is also looked at in tiles at this many times the first look's scale, which
# overlap by this share (text cut by one tile's edge is whole in the next), at most this many.
TILE_TIMES = 2.0
MAX_TILED_SCALE = 2 / 3  # a picture shrunk less gains too little from tiles at its own size
TILE_OVERLAP = 0.1
MAX_TILES = 6
MAX_CANVASES = 8


def closer_regions(
    probability: npt.NDArray[np.float32],
    scale: float,
    size: tuple[int, int],
    reads: Sequence[TextRead],
    canvas: tuple[int, int],
) -> list[tuple[Region, float]]:
    """Where, and at which zoom, to look closer at a picture of `size` (width, height) whose first
    look, at `scale` on a detector canvas of `canvas`, gave this probability map and these reads."""
    w, h = size
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
        regions += [(tile, tile_zoom) for tile in _tiles(w, h, tile_zoom, canvas)]
    return regions


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
        margin = CLOSER_CONTEXT * max(min(bw, bh), MIN_TRACE_PX)
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


def _tiles(w: int, h: int, zoom: float, canvas: tuple[int, int]) -> list[Region]:
    """Overlapping tiles covering a w x h picture, each filling a detector canvas at `zoom`."""
    tile_w, tile_h = int(canvas[1] / zoom), int(canvas[0] / zoom)
    columns = max(1, int(np.ceil(w / ((1 - TILE_OVERLAP) * tile_w)))) if w > tile_w else 1
    rows = max(1, int(np.ceil(h / ((1 - TILE_OVERLAP) * tile_h)))) if h > tile_h else 1
    xs = np.linspace(0, max(0, w - tile_w), columns).astype(int)
    ys = np.linspace(0, max(0, h - tile_h), rows).astype(int)
    tiles = [(int(x), int(y), int(min(w, x + tile_w)), int(min(h, y + tile_h))) for y in ys for x in xs]
    return tiles[:MAX_TILES]


class Placed(NamedTuple):
    """Where a region went on a mosaic canvas: canvas x, y, size, its corner in the picture, its zoom."""

    x: int
    y: int
    w: int
    h: int
    x0: int
    y0: int
    zoom: float

    def to_picture(self, box: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Corners on the canvas, in the picture's pixels."""
        return (box - np.array([self.x, self.y], np.float32)) / self.zoom + np.array(
            [self.x0, self.y0], np.float32
        )


def mosaics(
    image: Frame, regions: list[tuple[Region, float]], canvas_size: tuple[int, int]
) -> list[tuple[Frame, list[Placed]]]:
    """The regions enlarged by their zoom, packed row by row onto canvases of `canvas_size` (height,
    width; at most MAX_CANVASES)."""
    height, width = canvas_size
    mosaics: list[tuple[Frame, list[Placed]]] = []
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
        placed.append(Placed(x, y, pw, ph, x0, y0, zoom))
        x, row = x + pw, max(row, ph)
    return mosaics


def placement_of(centre: npt.NDArray[np.float32], placed: list[Placed]) -> Placed | None:
    """The region that holds a canvas point."""
    for p in placed:
        if p.x <= centre[0] < p.x + p.w and p.y <= centre[1] < p.y + p.h:
            return p
    return None
