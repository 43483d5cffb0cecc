"""Where the plate reader looks closer: pure geometry on made-up probability maps."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.recognition.closer_look import (
    CLOSER_ZOOM,
    MAX_CANVASES,
    Placed,
    closer_regions,
    mosaics,
    placement_of,
)
from cloud.recognition.line_assembly import TextRead

CANVAS = (448, 640)


def _map(*blobs: tuple[int, int, int, int, float]) -> np.ndarray:
    probability = np.zeros(CANVAS, np.float32)
    for x, y, w, h, p in blobs:
        probability[y : y + h, x : x + w] = p
    return probability


def _read(text: str, x: float, y: float, w: float, h: float, confidence: float) -> TextRead:
    return TextRead(text, confidence, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def test_small_text_and_weak_traces_get_a_closer_look_with_context_and_big_text_does_not() -> None:
    probability = _map((100, 100, 40, 8, 0.2), (300, 200, 200, 30, 0.9))  # a faint small line; big text
    regions = closer_regions(probability, 1.0, (640, 448), [], CANVAS)
    assert len(regions) == 1
    (x0, y0, x1, y1), zoom = regions[0]
    assert zoom == CLOSER_ZOOM
    assert x0 < 100 and y0 < 100 and x1 > 140 and y1 > 108  # context around the trace
    assert x1 - x0 < 100  # but not the big text's


def test_a_long_line_read_confidently_is_not_looked_at_again_but_a_short_or_unsure_one_is() -> None:
    probability = _map((10, 10, 200, 10, 0.9))  # a camera's clock, small
    clock = "T1-C2 2026-03-02 11:33:20"
    assert closer_regions(probability, 1.0, (640, 448), [_read(clock, 8, 8, 204, 14, 0.97)], CANVAS) == []
    assert closer_regions(probability, 1.0, (640, 448), [_read(clock, 8, 8, 204, 14, 0.80)], CANVAS)
    assert closer_regions(probability, 1.0, (640, 448), [_read("TE33A-9", 8, 8, 204, 14, 0.99)], CANVAS)


def test_a_picture_shrunk_to_fit_is_also_looked_at_in_tiles_covering_all_of_it() -> None:
    w, h = 2560, 1440
    scale = min(CANVAS[1] / w, CANVAS[0] / h)  # 0.25
    regions = closer_regions(np.zeros(CANVAS, np.float32), scale, (w, h), [], CANVAS)
    tiles = [region for region, zoom in regions if zoom == pytest.approx(2 * scale)]
    assert tiles and len(tiles) == len(regions)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles:
        covered[y0:y1, x0:x1] = True
        assert (x1 - x0) * 2 * scale <= CANVAS[1] + 1 and (y1 - y0) * 2 * scale <= CANVAS[0] + 1
    assert covered.all()
    # Shrunk only a little: tiles at its own size would gain too little.
    assert closer_regions(np.zeros(CANVAS, np.float32), 0.9, (711, 497), [], CANVAS) == []


def test_regions_are_packed_onto_canvases_and_boxes_map_back_to_the_picture() -> None:
    yy, xx = np.mgrid[0:600, 0:900]
    picture = np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8)  # each pixel says where
    regions = [((10 * i, 20, 10 * i + 150, 120), 2.0) for i in range(10)]  # each 300 x 200 on a canvas
    packed = mosaics(picture, regions, CANVAS)
    placements = [p for _, placed in packed for p in placed]
    assert [len(placed) for _, placed in packed] == [4, 4, 2]  # two a row, two rows a canvas
    assert [(p.x, p.y) for p in packed[0][1]] == [(0, 0), (300, 0), (0, 200), (300, 200)]
    for canvas, placed in packed:
        for p in placed:
            assert p.x + p.w <= CANVAS[1] and p.y + p.h <= CANVAS[0]
            corner = canvas[p.y + 2, p.x + 2].astype(int)
            assert (
                np.abs(corner - picture[p.y0 + 1, p.x0 + 1].astype(int)).max() < 60
            )  # the region's own pixels
    first = placements[1]
    box = np.array([[first.x + 20, first.y + 10], [first.x + 60, first.y + 10]], np.float32)
    assert placement_of(box.mean(axis=0), packed[0][1]) == first
    assert first.to_picture(box).tolist() == [[first.x0 + 10, first.y0 + 5], [first.x0 + 30, first.y0 + 5]]
    assert placement_of(np.array([639.5, 447.5], np.float32), packed[0][1]) is None


def test_no_more_than_max_canvases_are_filled() -> None:
    picture = np.zeros((2000, 2000, 3), np.uint8)
    regions = [((0, 0, 600, 400), 1.0)] * (MAX_CANVASES + 3)
    assert len(mosaics(picture, regions, CANVAS)) == MAX_CANVASES


def test_a_placement_maps_canvas_corners_by_its_zoom() -> None:
    p = Placed(x=100, y=50, w=200, h=100, x0=400, y0=300, zoom=2.0)
    corners = np.array([[100, 50], [300, 150]], np.float32)
    assert p.to_picture(corners).tolist() == [[400, 300], [500, 350]]


def test_traces_on_a_shrunk_map_are_regions_in_the_pictures_own_pixels() -> None:
    # The map at scale 0.5: a blob at (100, 100) 20 x 6 lies at (200, 200) 40 x 12 in the picture.
    regions = closer_regions(_map((100, 100, 20, 6, 0.5)), 0.5, (1280, 896), [], CANVAS)
    traces = [region for region, zoom in regions if zoom == CLOSER_ZOOM]
    assert len(traces) == 1
    x0, y0, x1, y1 = traces[0]
    margin = 1.5 * 6 / 0.5  # CLOSER_CONTEXT text heights, in picture pixels
    assert (x0, y0, x1, y1) == (int(200 - margin), int(200 - margin), int(240 + margin), int(212 + margin))


def test_overlapping_traces_merge_and_distant_ones_stay_apart_most_probable_first() -> None:
    probability = _map((100, 100, 30, 6, 0.3), (125, 104, 30, 6, 0.6), (400, 300, 30, 6, 0.9))
    regions = [region for region, _ in closer_regions(probability, 1.0, (640, 448), [], CANVAS)]
    assert len(regions) == 2
    far, merged = regions  # the 0.9 trace first
    assert far[0] > 300 and far[1] > 250
    assert merged[0] < 100 and merged[2] > 155 and merged[1] < 100 and merged[3] > 110


@pytest.mark.parametrize(("read_width", "looked_at"), [(204, False), (120, False), (90, True)])
def test_a_confident_long_read_hides_only_the_trace_it_mostly_covers(
    read_width: float, looked_at: bool
) -> None:
    probability = _map((10, 10, 200, 10, 0.9))
    clock = _read("T1-C2 2026-03-02 11:33:20", 10, 10, read_width, 10, 0.99)
    assert bool(closer_regions(probability, 1.0, (640, 448), [clock], CANVAS)) is looked_at
