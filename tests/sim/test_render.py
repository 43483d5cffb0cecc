"""The renderer draws what the ground truth says, where the calibration says, deterministically."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from shared.calibration import RAIL_OFFSET_M
from shared.frames import Frame
from shared.layout import Facility, parse_facility
from sim.appearance import Appearance
from sim.fleet import boxes
from sim.placement import Placement, camera_entry, placement_layout
from sim.render import CameraRenderer
from sim.scenario import Conditions, Lighting, Scenario
from sim.truth import visible_extents
from sim.world import LocoState, World
from tests.conftest import REPO

QUIET = Conditions(lighting=Lighting.DAY, noise_sigma=(0, 0), workers_per_camera=0, timestamp_overlay=False)
# The floor 1 cm inside the undercarriage's near edge (half width 1.45 m; cameras stand at negative
# offsets): hidden where a locomotive stands, whatever the body above it. Further inside, the box's own
# volume hides floor beyond its end; even at 1 cm that adds up to ~3 px for ends 12 m from the camera.
FOOTPRINT_OFFSET_M = -1.44
END_TOLERANCE_PX = 4.0


@pytest.fixture(scope="module")
def worlds(facility: Facility) -> tuple[World, World]:
    busy = Scenario(seed=21, horizon_h=24, conditions=QUIET)
    empty = busy.model_copy(update={"initial_occupancy": 0.0, "arrivals_per_track_hour": 0.0})
    return World(facility, busy), World(facility, empty)


def test_painted_ends_lie_where_the_calibration_maps_true_metres(
    facility: Facility, worlds: tuple[World, World]
) -> None:
    busy, empty = worlds
    checked = 0
    for t in np.arange(0, 24 * 3600, 1200.0):
        for cid, cam in sorted(facility.cameras.items()):
            extents = visible_extents(facility, cid, busy.locos_at(t))
            ends = [e.start_m for e in extents if not e.start_beyond_view]
            ends += [e.end_m for e in extents if not e.end_beyond_view]
            if not ends or checked >= 24:
                continue
            drawn = CameraRenderer(facility, cid, busy).render(t).image.astype(int)
            bare = CameraRenderer(facility, cid, empty).render(t).image.astype(int)
            covered_px = np.abs(drawn - bare).max(axis=2) > 25
            model = cam.calibration.model
            s = np.arange(cam.view.start_m - 2, cam.view.end_m + 2, 0.01)
            uv = model.to_image(np.stack([s, np.full_like(s, FOOTPRINT_OFFSET_M)], axis=1))
            w, h = cam.resolution
            inside = (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
            s, uv = s[inside], uv[inside]
            covered = covered_px[
                np.round(uv[:, 1]).astype(int).clip(0, h - 1), np.round(uv[:, 0]).astype(int).clip(0, w - 1)
            ]
            boundaries = np.flatnonzero(covered[1:] != covered[:-1])
            assert len(boundaries), f"{cid} t={t}: locomotive not drawn along its footprint"
            for end in ends:
                nearest = boundaries[np.argmin(np.abs(s[boundaries] - end))]
                truth_px = model.to_image(np.array([[end, FOOTPRINT_OFFSET_M]]))[0]
                error = float(np.linalg.norm(uv[nearest] - truth_px))
                assert error <= END_TOLERANCE_PX, f"{cid} t={t}: end {end:.2f} m drawn {error:.1f} px away"
                checked += 1
    assert checked >= 10


def test_same_seed_renders_identical_frames(facility: Facility) -> None:
    scenario = Scenario(seed=8, horizon_h=2)
    a = CameraRenderer(facility, "T2-C2", World(facility, scenario)).render(1234.5).image
    b = CameraRenderer(facility, "T2-C2", World(facility, scenario)).render(1234.5).image
    c = CameraRenderer(facility, "T2-C2", World(facility, scenario.model_copy(update={"seed": 9}))).render(
        1234.5
    )
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c.image)


def test_frames_are_hd_colour_images(facility: Facility, worlds: tuple[World, World]) -> None:
    for cid, cam in facility.cameras.items():
        image = CameraRenderer(facility, cid, worlds[1]).render(0.0).image
        assert image.dtype == np.uint8
        assert image.shape == (cam.resolution[1], cam.resolution[0], 3)
        assert image.shape[0] >= 720 and image.shape[1] >= 1280


def test_night_is_darker_than_day(facility: Facility) -> None:
    day = World(facility, Scenario(horizon_h=1, conditions=Conditions(lighting=Lighting.DAY)))
    night = World(facility, Scenario(horizon_h=1, conditions=Conditions(lighting=Lighting.NIGHT)))
    lit = CameraRenderer(facility, "T3-C2", day).render(60.0).image.mean()
    dark = CameraRenderer(facility, "T3-C2", night).render(60.0).image.mean()
    assert dark < 0.6 * lit


def test_blur_and_noise_change_the_image_as_configured(facility: Facility) -> None:
    base = Scenario(horizon_h=1, conditions=QUIET)
    blurred = base.model_copy(update={"conditions": QUIET.model_copy(update={"blur_sigma_px": (3.0, 3.0)})})
    sharp = CameraRenderer(facility, "T1-C2", World(facility, base)).render(10.0).image
    soft = CameraRenderer(facility, "T1-C2", World(facility, blurred)).render(10.0).image
    gradient = lambda img: np.abs(np.diff(img.astype(int), axis=1)).mean()  # noqa: E731
    assert gradient(soft) < 0.8 * gradient(sharp)


def test_plate_labels_mark_painted_numbers_inside_the_frame(
    facility: Facility, worlds: tuple[World, World]
) -> None:
    busy, empty = worlds
    found = 0
    for t in np.arange(0, 24 * 3600, 900.0):
        for cid in sorted(facility.cameras):
            rendered = CameraRenderer(facility, cid, busy).render(t)
            if not rendered.plates:
                continue
            bare = CameraRenderer(facility, cid, empty).render(t).image
            plates_on_track = {s.loco.plate for s in busy.locos_at(t, facility.cameras[cid].track)}
            for label in rendered.plates:
                assert label.plate in plates_on_track
                quad = np.array(label.quad)
                x0, y0 = quad.min(axis=0).astype(int)
                x1, y1 = quad.max(axis=0).astype(int)
                patch = rendered.image[y0:y1, x0:x1].astype(int) - bare[y0:y1, x0:x1]
                assert np.abs(patch).mean() > 10, "a labelled plate must be painted over the background"
                found += 1
        if found >= 5:
            break
    assert found >= 5


_RENDER_ONE = """
import hashlib
from shared.layout import load_facility
from sim.render import CameraRenderer
from sim.scenario import Scenario
from sim.world import World
from tests.conftest import EXAMPLE_LAYOUT

facility = load_facility(EXAMPLE_LAYOUT)
frame = CameraRenderer(facility, "T2-C3", World(facility, Scenario(seed=5))).render(3600.5).image
print(hashlib.sha256(frame.tobytes()).hexdigest())
"""


def printed_under_two_salts(script: str) -> set[str]:
    """What `script` prints in two processes whose hash() is salted differently (PYTHONHASHSEED)."""
    return {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": salt},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.strip()
        for salt in ("1", "2")
    }


def test_a_seed_renders_the_same_frame_in_every_process() -> None:
    digests = printed_under_two_salts(_RENDER_ONE)
    assert len(digests) == 1, digests


# -- neighbouring tracks, the back wall and the look --------------------------------------------------

PLACEMENT_TRACK_M = 70.0
NEIGHBOUR_SPACING_M = 6.0
EMPTY = {"initial_occupancy": 0.0, "arrivals_per_track_hour": 0.0}
# Pixels this far outside a locomotive's projected bounding box are not its.
BOX_MARGIN_PX = 4


def _placement_facility(lateral_m: float, neighbours_m: tuple[float, ...]) -> Facility:
    """One camera 6 m up, `lateral_m` beside track T1, with parallel tracks at `neighbours_m`."""
    placement = Placement(along_m=5.0, height_m=6.0, lateral_m=lateral_m, hfov_deg=70.0, aim_ahead_m=12.0)
    entry = camera_entry("CAM", "T1", "edge-bay1", placement, PLACEMENT_TRACK_M)
    assert entry is not None
    return parse_facility(placement_layout(entry, PLACEMENT_TRACK_M, neighbours_m))


def _box_mask(renderer: CameraRenderer, state: LocoState, offset_m: float) -> npt.NDArray[np.uint8]:
    """255 over the convex hull of a locomotive's bounding box (own-track metres) in the image."""
    parts = boxes(state.loco.series)
    half = max(b.half_width for b in parts)
    top = max(b.z1 for b in parts)
    corners = np.array(
        [
            (s, offset_m + d, z)
            for s in (state.start_m, state.end_m)
            for d in (-half, half)
            for z in (0.0, top)
        ]
    )
    uv, depth = renderer.camera.project(corners)
    assert (depth > 1.0).all()
    mask = np.zeros((renderer.camera.height, renderer.camera.width), np.uint8)
    hull = cv2.convexHull(np.round(uv).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    return mask


def test_a_neighbouring_tracks_locomotive_is_drawn_where_it_stands() -> None:
    # A camera on the right of its track, a neighbour 6 m beyond it: its locomotives stand in view.
    facility = _placement_facility(-6.0, (NEIGHBOUR_SPACING_M,))
    busy = World(facility, Scenario(seed=3, horizon_h=12, conditions=QUIET))
    bare = World(facility, busy.scenario.model_copy(update=EMPTY))
    view = facility.cameras["CAM"].view
    t, state = next(
        (t, s)
        for t in np.arange(0.0, 12 * 3600, 120.0)
        if not busy.locos_at(t, "T1")
        for s in busy.locos_at(t, "N1")
        if view.start_m + 2 <= s.start_m and s.end_m <= view.end_m
    )
    renderer = CameraRenderer(facility, "CAM", busy)
    # The same layout, pit and rails of N1 included, with no traffic: what differs is the locomotive.
    drawn = renderer.render(t).image.astype(int)
    empty = CameraRenderer(facility, "CAM", bare).render(t).image.astype(int)
    changed = np.abs(drawn - empty).max(axis=2) > 0
    box = _box_mask(renderer, state, NEIGHBOUR_SPACING_M)
    kernel = np.ones((2 * BOX_MARGIN_PX + 1,) * 2, np.uint8)
    near_box = cv2.dilate(box, kernel) > 0
    assert changed[box > 0].mean() > 0.5, "the neighbour's locomotive must fill most of its box"
    assert not changed[~near_box].any(), "nothing but the neighbour's locomotive may change"


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["camera-left", "camera-right"])
def test_workers_stand_on_the_cameras_side_of_the_track(side: float) -> None:
    facility = _placement_facility(8.0 * side, ())
    crowded = QUIET.model_copy(update={"workers_per_camera": 3.0})
    scenario = Scenario(seed=4, horizon_h=2, conditions=crowded, **EMPTY)
    world = World(facility, scenario)
    t = next(t for t in np.arange(0.0, 2 * 3600, 60.0) if len(world.workers_at("CAM", t)) >= 2)
    renderer = CameraRenderer(facility, "CAM", world)
    nobody = World(facility, scenario.model_copy(update={"conditions": QUIET}))
    changed = (
        np.abs(
            renderer.render(t).image.astype(int) - CameraRenderer(facility, "CAM", nobody).render(t).image
        ).max(axis=2)
        > 0
    )
    # Where each worker stands: its planned offset (negative, the right of the track) turned to the
    # camera's side.
    expected = np.zeros(changed.shape, np.uint8)
    for worker in world.workers_at("CAM", t):
        d = side * abs(worker.offset_m)
        corners = np.array(
            [(worker.track_m + ds, d + dd, z) for ds in (-0.3, 0.3) for dd in (-0.3, 0.3) for z in (0.0, 1.9)]
        )
        uv, depth = renderer.camera.project(corners)
        assert (depth > 1.0).all()
        cv2.fillConvexPoly(expected, cv2.convexHull(np.round(uv).astype(np.int32)), 255)
    expected = cv2.dilate(expected, np.ones((2 * BOX_MARGIN_PX + 1,) * 2, np.uint8))
    assert changed.sum() > 200, "the workers must be drawn"
    assert not changed[expected == 0].any(), "workers drawn where none stands"


def _distinct_look_seed(camera_id: str) -> int:
    """A seed whose drawn look tells floor, wall, rail and pit apart at a glance (and whose wall stands
    less than 11 m beyond the last track, little mottled)."""
    for seed in range(200):
        look = Appearance.drawn(seed, camera_id)
        colours = (look.floor, look.wall, look.rail, look.pit)
        apart = min(float(np.linalg.norm(np.subtract(a, b))) for a, b in itertools.combinations(colours, 2))
        if apart > 50 and look.wall_gap_m < 11 and look.floor_mottle < 8:
            return seed
    raise AssertionError("no seed draws a look with distinct colours")


def _seen_as(
    renderer: CameraRenderer, image: Frame, points: npt.NDArray[np.float64], half_width_m: float = 0.0
) -> list[str]:
    """Which of the look's floor, wall, rail and pit colours each point's pixel is nearest (points in
    the image only; with `half_width_m`, only where that much either side laterally spans at least
    3 pixels, so that the point's pixel lies inside what is drawn there)."""
    look = renderer.look
    colours = {"floor": look.floor, "wall": look.wall, "rail": look.rail, "pit": look.pit}
    uv, depth = renderer.camera.project(points)
    wide = np.ones(len(points), bool)
    if half_width_m:
        across = np.array([0.0, half_width_m, 0.0])
        lo, _ = renderer.camera.project(points - across)
        hi, _ = renderer.camera.project(points + across)
        wide = np.linalg.norm(hi - lo, axis=1) >= 3
    w, h = renderer.camera.width, renderer.camera.height
    px = np.round(uv).astype(int)
    inside = (depth > 1.0) & wide & (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
    seen = []
    for x, y in px[inside]:
        pixel = image[y, x].astype(float)
        seen.append(min(colours, key=lambda name: float(np.linalg.norm(pixel - colours[name]))))
    return seen


@pytest.mark.parametrize("side", [1.0, -1.0], ids=["camera-left", "camera-right"])
def test_the_back_wall_stands_beyond_the_far_neighbour_whichever_side_the_camera(side: float) -> None:
    # A camera 10 m to one side; a neighbour track 6 m to the other, beyond its own.
    far = -side
    facility = _placement_facility(10.0 * side, (far * NEIGHBOUR_SPACING_M,))
    conditions = QUIET.model_copy(update={"varied_appearance": True})
    scenario = Scenario(seed=_distinct_look_seed("CAM"), horizon_h=1, conditions=conditions, **EMPTY)
    renderer = CameraRenderer(facility, "CAM", World(facility, scenario))
    image = renderer.render(60.0).image
    look = renderer.look
    view = facility.cameras["CAM"].view
    s = np.arange(view.start_m, view.end_m, 0.25)

    def along(lateral_m: float, z: float = 0.0, at: npt.NDArray[np.float64] = s) -> npt.NDArray[np.float64]:
        return np.stack([at, np.full_like(at, lateral_m), np.full_like(at, z)], axis=1)

    # The own track's rail heads show, and the neighbour's pit (its rails are too thin a line at that
    # distance to sample): no wall stands between them and the camera.
    for rail in (-RAIL_OFFSET_M, RAIL_OFFSET_M):
        seen = _seen_as(renderer, image, along(rail), half_width_m=0.04)
        assert len(seen) >= 20, rail
        assert set(seen) == {"rail"}, (rail, sorted(set(seen)))
    seen = _seen_as(renderer, image, along(far * NEIGHBOUR_SPACING_M), half_width_m=look.pit_half_width_m / 2)
    assert len(seen) >= 20
    assert set(seen) == {"pit"}, sorted(set(seen))
    # Floor between the neighbour's safety line and the wall, then the wall (between its columns,
    # below its windows) the look's gap beyond the neighbour.
    beyond = NEIGHBOUR_SPACING_M + (2.25 + look.wall_gap_m) / 2
    seen = _seen_as(renderer, image, along(far * beyond))
    assert len(seen) >= 20
    assert set(seen) == {"floor"}, sorted(set(seen))
    bays = np.arange(6 * np.floor(view.start_m / 6) + 3, view.end_m + 30, 6.0)
    seen = _seen_as(
        renderer, image, along(far * (NEIGHBOUR_SPACING_M + look.wall_gap_m) - far * 0.05, 2.0, bays)
    )
    assert len(seen) >= 3
    assert set(seen) == {"wall"}, sorted(set(seen))


def test_a_drawn_look_is_the_same_for_a_seed_and_camera_and_differs_across_cameras() -> None:
    assert Appearance.drawn(5, "T1-C1") == Appearance.drawn(5, "T1-C1")
    looks = {Appearance.drawn(5, f"T1-C{i}") for i in range(1, 9)}
    assert len(looks) == 8
    assert Appearance.drawn(6, "T1-C1") != Appearance.drawn(5, "T1-C1")
    assert Appearance() not in looks


def test_a_drawn_look_is_the_same_in_every_process() -> None:
    script = "from sim.appearance import Appearance; print(Appearance.drawn(5, 'T1-C1'))"
    assert printed_under_two_salts(script) == {f"{Appearance.drawn(5, 'T1-C1')}"}


def _pit_colour(renderer: CameraRenderer, image: Frame) -> npt.NDArray[np.float64]:
    """The mean colour along the own track's centreline (the pit between the rails) in the view."""
    s = np.arange(renderer.view.start_m, renderer.view.end_m, 0.1)
    uv, _ = renderer.camera.project(np.stack([s, np.zeros_like(s), np.zeros_like(s)], axis=1))
    px = np.round(uv).astype(int)
    w, h = renderer.camera.width, renderer.camera.height
    px = px[(px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)]
    assert len(px) > 50
    return np.asarray(image[px[:, 1], px[:, 0]].astype(float).mean(axis=0))


def test_the_default_conditions_draw_the_default_look_and_varied_ones_the_cameras_own(
    facility: Facility,
) -> None:
    default = Scenario(seed=5, horizon_h=1, conditions=QUIET, **EMPTY)
    varied = default.model_copy(update={"conditions": QUIET.model_copy(update={"varied_appearance": True})})
    plain = CameraRenderer(facility, "T1-C1", World(facility, default))
    drawn = CameraRenderer(facility, "T1-C1", World(facility, varied))
    assert plain.look == Appearance()
    assert drawn.look == Appearance.drawn(5, "T1-C1")
    plain_image, drawn_image = plain.render(60.0).image, drawn.render(60.0).image
    # The pit is drawn in the look's colour (the floor's mottling averages out along the track).
    assert _pit_colour(plain, plain_image) == pytest.approx(Appearance().pit, abs=6)
    assert _pit_colour(drawn, drawn_image) == pytest.approx(drawn.look.pit, abs=6)
    assert not np.array_equal(plain_image, drawn_image)
