"""The strip's validity mask: 1 exactly where a strip cell samples a frame pixel, 0 where it falls off
the image and is drawn black, so that the model can tell the image's edge from a locomotive's end."""

from __future__ import annotations

import numpy as np

from shared.layout import Camera, Facility, parse_facility
from shared.strip import SEEN_SHARE, STRIP_HEIGHT, STRIP_WIDTH, StripGeometry
from sim.placement import DEPOT_ENVELOPE, draw_placements, placement_layout


def _cameras(facility: Facility) -> list[tuple[str, Camera]]:
    """The example depot's cameras and a dozen drawn from the depot envelope."""
    drawn = []
    for _, entry in draw_placements(DEPOT_ENVELOPE, 12, seed=31):
        (camera_id,) = entry
        drawn.append((camera_id, parse_facility(placement_layout(entry)).cameras[camera_id]))
    return sorted(facility.cameras.items()) + drawn


def test_valid_marks_exactly_the_cells_rectify_samples_from_the_frame(facility: Facility) -> None:
    partly_off = 0
    for camera_id, camera in _cameras(facility):
        geometry = StripGeometry.for_camera(camera_id, camera)
        valid = geometry.valid
        assert valid.dtype == np.uint8
        assert valid.shape == (STRIP_HEIGHT, STRIP_WIDTH)
        assert set(np.unique(valid)) <= {0, 1}
        w, h = camera.resolution
        # A white frame: sampled cells come out white, cells off the image take the black border.
        strip = geometry.rectify(np.full((h, w, 3), 255, np.uint8))
        assert np.array_equal(strip, np.repeat(valid[..., None] * 255, 3, axis=2)), camera_id
        partly_off += 0 < valid.sum() < valid.size
    assert partly_off >= 5


def test_valid_is_where_the_nearest_pixel_lies_inside_the_frame(facility: Facility) -> None:
    boundary = 0
    for camera_id, camera in _cameras(facility):
        geometry = StripGeometry.for_camera(camera_id, camera)
        w, h = geometry.frame_size
        # cv2.remap's nearest pixel rounds half to even, as np.rint does.
        x, y = np.rint(geometry.map_x), np.rint(geometry.map_y)
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        assert np.array_equal(geometry.valid, inside.astype(np.uint8)), camera_id
        # The cells half a pixel either side of the edge pixels' centres, that a test of map >= 0 or
        # map <= w - 1 would put on the wrong side: the drawn cameras have them, so the checks here
        # and above hold at the edge, not only far from it.
        boundary += int(
            sum(
                ((m >= -0.5) & (m < 0)).sum() + ((m > size - 1) & (m < size - 0.5)).sum()
                for m, size in ((geometry.map_x, w), (geometry.map_y, h))
            )
        )
    assert boundary >= 10


def test_a_camera_that_sees_the_strip_only_in_part_has_both_values(facility: Facility) -> None:
    # An example camera 2.5 m beside its track: where its view begins, the strip's plane (1.5 m
    # towards the camera) lies below the image, and the plane's far top beyond its right edge.
    geometry = StripGeometry.for_camera("T1-C1", facility.cameras["T1-C1"])
    assert 0.3 < geometry.valid.mean() < 0.95
    assert not geometry.valid[:, 0].any()
    assert geometry.valid[:, STRIP_WIDTH // 2].all()
    strip = geometry.rectify(np.full((720, 1280, 3), 255, np.uint8))
    assert np.array_equal(strip[..., 0] == 255, geometry.valid == 1)


def test_the_seen_columns_run_from_the_first_to_the_last_column_showing_enough_plane(
    facility: Facility,
) -> None:
    narrowed = 0
    for camera_id, camera in _cameras(facility):
        geometry = StripGeometry.for_camera(camera_id, camera)
        share = geometry.valid.mean(axis=0)
        first, last = geometry.seen_columns
        assert share[first] >= SEEN_SHARE and share[last - 1] >= SEEN_SHARE, camera_id
        assert (share[:first] < SEEN_SHARE).all() and (share[last:] < SEEN_SHARE).all(), camera_id
        lo, hi = geometry.seen_m
        assert camera.view.start_m <= lo < hi <= camera.view.end_m
        narrowed += hi - lo < camera.view.end_m - camera.view.start_m - 0.5
    # The image's edges cut the plane before the centreline for most mountings, the example's too.
    assert narrowed >= 10
