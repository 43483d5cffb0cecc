"""Numbers are painted as depots paint them: classic as before, each other style recognisably its own,
the plate rectangles covering what is painted, the same pixels in every process; lamps glare at night."""

from __future__ import annotations

import hashlib
import itertools

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from shared.layout import Facility
from sim.fleet import SERIES, Box, Series, boxes, make_fleet
from sim.paint import style_of
from sim.render import CameraRenderer, Rendered
from sim.scenario import Conditions, Lighting, NumberPaint, Scenario
from sim.textures import PX_PER_M, FaceTexture, end_texture, side_texture
from sim.world import World
from tests.sim.test_render import printed_under_two_salts

# Every classic texture of every series (two plates each, all parts, all cab ends) hashed as the
# simulator drew them before the paint styles existed: trained models rely on those pixels.
CLASSIC_TEXTURES_SHA256 = "f7c5e00030c177761e368e7b157f8f969eac7f6d23f4ef19cf0d05e61d7a2858"
CLASSIC = NumberPaint.CLASSIC
STYLES = [p for p in NumberPaint if p not in (NumberPaint.CLASSIC, NumberPaint.VARIED)]
# White lettering far from the yellow stripe and the green body: a colour threshold finds the number.
TEM2 = SERIES["TEM2"]
PLATE = "TEM2-1234"
LETTERING_TOLERANCE = 60
HUG_PX = 8
# Frames of the example depot (seed 905) that show lamps facing the camera at night: a headlight
# over a shunter's hood, and buffer lamps and a work lamp hung beside a cab number.
LAMP_FRAMES = [("T3-C4", 36000.0), ("T2-C1", 3600.0)]
# ... and one whose only lamp in view, a shunter's headlight on a cab front the camera sees edge-on, is
# hidden behind the cab roof.
HIDDEN_LAMP_FRAME = ("T2-C2", 216000.0)


def _classic_digest() -> str:
    digest = hashlib.sha256()
    for name, series in SERIES.items():
        for plate in (f"{name}-0457", f"{name}-1234"[: len(name) + 1 + series.digits]):
            for box in boxes(series):
                for first in (False, True):
                    for second in (False, True):
                        digest.update(_bytes(side_texture(series, plate, box, first, second, CLASSIC)))
                    digest.update(_bytes(end_texture(series, plate, box, first, CLASSIC)))
    return digest.hexdigest()


def _bytes(texture: FaceTexture) -> bytes:
    return texture.image.tobytes() + repr(texture.plates).encode()


def _cab(series: Series) -> Box:
    return next(b for b in boxes(series) if b.part in ("cab", "body"))


def _side(paint: NumberPaint, series: Series = TEM2, plate: str = PLATE) -> FaceTexture:
    return side_texture(series, plate, _cab(series), True, False, paint)


def _front(paint: NumberPaint, series: Series = TEM2, plate: str = PLATE) -> FaceTexture:
    return end_texture(series, plate, _cab(series), True, paint)


def _lettering(texture: FaceTexture, series: Series = TEM2) -> npt.NDArray[np.bool_]:
    """Pixels painted in the lettering's colour, below the headlight (near white, as the lettering)."""
    diff = np.abs(texture.image.astype(int) - np.array(series.lettering)).max(axis=2)
    mask = diff < LETTERING_TOLERANCE
    mask[: PX_PER_M // 2] = False
    return np.asarray(mask)


def _inside(shape: tuple[int, ...], rect: tuple[int, int, int, int]) -> npt.NDArray[np.bool_]:
    x, y, w, h = rect
    mask = np.zeros(shape[:2], bool)
    mask[max(y, 0) : y + h, max(x, 0) : x + w] = True
    return mask


def _runs(indices: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]]:
    """Consecutive runs of sorted indices."""
    return np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1)


def _frame(facility: Facility, camera: str, t: float, **conditions: object) -> Rendered:
    scenario = Scenario(seed=905, conditions=Conditions.model_validate(conditions))
    return CameraRenderer(facility, camera, World(facility, scenario)).render(t)


def _fine_detail(image: npt.NDArray[np.uint8], quad: list[tuple[float, float]]) -> float:
    """Mean high-pass energy inside a quad: what tells strokes from the body, whatever light lies over
    both (a smooth glow adds none; where it saturates, strokes and body become one)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    high = np.abs(grey - cv2.GaussianBlur(grey, (0, 0), 2.0))
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillConvexPoly(mask, np.array(quad).astype(np.int32), 1)
    return float(high[mask > 0].mean())


# -- the styles ---------------------------------------------------------------------------------------


def test_classic_paints_every_texture_as_before_the_styles_existed() -> None:
    assert _classic_digest() == CLASSIC_TEXTURES_SHA256


@pytest.mark.parametrize("paint", STYLES, ids=str)
def test_each_style_paints_the_side_and_the_front_unlike_classic(paint: NumberPaint) -> None:
    for draw in (_side, _front):
        classic, styled = draw(NumberPaint.CLASSIC), draw(paint)
        changed = np.abs(styled.image.astype(int) - classic.image).max(axis=2) > 20
        assert changed.sum() > 50, f"{paint} {draw.__name__}"
        # Only the number and what lies around it differ: the livery stays.
        near = np.zeros(changed.shape, bool)
        for x, y, w, h in classic.plates + styled.plates:
            near |= _inside(changed.shape, (x - 40, y - 40, w + 80, h + 80))
        assert not changed[~near].any(), f"{paint} {draw.__name__}"


@pytest.mark.parametrize(("plate", "closed"), [("TEM2-0689", True), ("TEM2-1257", False)])
def test_a_stencil_bridges_each_closed_character_and_leaves_the_others_whole(
    plate: str, closed: bool
) -> None:
    # Each character of the classic number is one piece; a stencil holds the island of a closed one
    # (0, 6, 8, 9) by bridges that cut it in two or more, and leaves 1, 2, 5, 7, T, E, M whole.
    pieces, paint = {}, {}
    for style in (NumberPaint.CLASSIC, NumberPaint.STENCIL):
        texture = _side(style, plate=plate)
        mask = _lettering(texture) & _inside(texture.image.shape, texture.plates[0])
        pieces[style] = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1
        paint[style] = int(mask.sum())
    assert pieces[NumberPaint.CLASSIC] == len(plate)
    if closed:  # at the texture's resolution some bridges blur shut; at least one stays open
        assert pieces[NumberPaint.STENCIL] > pieces[NumberPaint.CLASSIC]
        assert paint[NumberPaint.STENCIL] < paint[NumberPaint.CLASSIC]
    else:
        assert pieces[NumberPaint.STENCIL] == pieces[NumberPaint.CLASSIC]
    # Bridges are thin and run across strokes: most of the paint stays (cutting along the stems of
    # 1, 4, T and M would take a quarter of it).
    assert paint[NumberPaint.STENCIL] >= 0.8 * paint[NumberPaint.CLASSIC]


@pytest.mark.parametrize("series", [TEM2, SERIES["2TE25A"]], ids=lambda s: s.name)
def test_groups_leave_a_digit_wide_gap_and_drop_the_dash(series: Series) -> None:
    plate = f"{series.name}-{'8590'[: series.digits]}"
    texture = _side(NumberPaint.GROUPS, series, plate)
    mask = _lettering(texture, series) & _inside(texture.image.shape, texture.plates[0])
    runs = _runs(np.flatnonzero(mask.any(axis=0)))
    gap, before = max((int(b[0] - a[-1] - 1), int(a[-1])) for a, b in itertools.pairwise(runs))
    number = np.flatnonzero(mask.any(axis=0))
    number = number[number > before]
    digit = (number[-1] - number[0] + 1) / series.digits
    assert 0.8 <= gap / digit <= 1.5, (gap, digit)
    # What follows the gap is the number alone: as wide as its digits, no dash before them.
    classic = _lettering(_side(NumberPaint.CLASSIC, series, plate), series)
    assert mask.sum() < classic.sum(), "the dash is dropped"


def test_a_groups_plate_rectangle_covers_both_groups_on_the_side_and_both_lines_on_the_front() -> None:
    for texture, lines in ((_side(NumberPaint.GROUPS), 1), (_front(NumberPaint.GROUPS), 2)):
        assert len(texture.plates) == 1, "one rectangle per painted number"
        mask = _lettering(texture)
        inside = _inside(mask.shape, texture.plates[0])
        assert mask.sum() > 100
        assert not (mask & ~inside).any(), "all of the number lies in its rectangle"
        x, y, w, h = texture.plates[0]
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # ... and the rectangle hugs it (the classic margin: a fifth of the text height, and the room
        # Hershey leaves above capitals).
        assert max(cols[0] - x, x + w - cols[-1], rows[0] - y, y + h - rows[-1]) <= HUG_PX
        assert len(_runs(rows)) == lines


def test_a_small_plate_hangs_under_the_cab_window_instead_of_the_big_number() -> None:
    for draw in (_side, _front):
        classic, small = draw(NumberPaint.CLASSIC), draw(NumberPaint.SMALL_PLATE)
        (plaque,) = small.plates
        x, y, w, h = plaque
        ground = small.image[y + 2 : y + h - 2, x + 2 : x + w - 2].astype(int)
        assert np.abs(np.median(ground, axis=(0, 1)) - TEM2.body).max() > 60, "a plaque unlike the body"
        # The plaque sits higher than the classic number, which is not painted at all.
        assert y + h <= classic.plates[0][1] + classic.plates[0][3]
        spot = _inside(small.image.shape, classic.plates[0]) & ~_inside(small.image.shape, plaque)
        assert not _lettering(small)[spot].any(), draw.__name__
        # Its digits are 0.10-0.14 m high (a stroke's width more, drawn).
        contrast = np.abs(ground - np.median(ground, axis=(0, 1))).max(axis=2) > 60
        rows = np.flatnonzero(contrast.mean(axis=1) > 0.05)
        assert 0.10 * PX_PER_M <= rows[-1] - rows[0] + 1 <= 0.14 * PX_PER_M + 2


@pytest.mark.parametrize("series", [TEM2, SERIES["2TE25A"], SERIES["CHME3"]], ids=lambda s: s.name)
def test_faded_lettering_keeps_a_third_to_two_thirds_of_its_contrast_under_dirt(series: Series) -> None:
    plate = f"{series.name}-{'6087'[: series.digits]}"
    classic, faded = _side(NumberPaint.CLASSIC, series, plate), _side(NumberPaint.FADED, series, plate)
    x, y, w, h = classic.plates[0]
    assert faded.plates == classic.plates
    before = classic.image[y : y + h, x : x + w].astype(float)
    after = faded.image[y : y + h, x : x + w].astype(float)
    body, lettering = np.array(series.body, float), np.array(series.lettering, float)
    full = np.abs(before - lettering).max(axis=2) < 10
    kept = np.linalg.norm(after[full] - body, axis=1) / np.linalg.norm(lettering - body)
    assert 0.3 <= float(np.median(kept)) <= 0.72
    assert float(np.percentile(kept, 10)) < 0.3, "some strokes are worn away"
    # Soot and rust over the body just above the number too.
    above = (slice(y - 12, y), slice(x, x + w))
    assert (np.abs(faded.image[above].astype(int) - classic.image[above]).max(axis=2) > 10).mean() > 0.05


def test_varied_paints_a_fleet_in_most_styles_and_each_locomotive_in_one() -> None:
    fleet = make_fleet(np.random.default_rng(3), 40)
    styles = {style_of(NumberPaint.VARIED, loco.plate) for loco in fleet}
    assert NumberPaint.CLASSIC in styles
    assert NumberPaint.VARIED not in styles
    assert len(styles) >= 4
    assert all(style_of(paint, PLATE) is paint for paint in STYLES)
    loco = fleet[0]
    chosen = style_of(NumberPaint.VARIED, loco.plate)
    varied = side_texture(loco.series, loco.plate, _cab(loco.series), True, False, NumberPaint.VARIED)
    assert np.array_equal(varied.image, _side(chosen, loco.series, loco.plate).image)


def test_conditions_name_the_paint_and_the_glare_and_default_to_the_classic_look() -> None:
    default = Conditions()
    assert default.number_paint is NumberPaint.CLASSIC and default.lamp_glare is False
    parsed = Conditions.model_validate({"number_paint": "small_plate", "lamp_glare": True})
    assert parsed.number_paint is NumberPaint.SMALL_PLATE and parsed.lamp_glare
    with pytest.raises(ValueError, match="number_paint"):
        Conditions.model_validate({"number_paint": "cyrillic"})


_RENDER_VARIED = """
import hashlib
from shared.layout import load_facility
from sim.fleet import make_fleet
from sim.paint import style_of
from sim.render import CameraRenderer
from sim.scenario import Conditions, Lighting, NumberPaint, Scenario
from sim.world import World
from tests.conftest import EXAMPLE_LAYOUT
import numpy as np

facility = load_facility(EXAMPLE_LAYOUT)
conditions = Conditions(lighting=Lighting.NIGHT, lamp_glare=True, number_paint=NumberPaint.VARIED)
world = World(facility, Scenario(seed=905, conditions=conditions))
digest = hashlib.sha256()
for camera, t in (("T3-C4", 36000.0), ("T2-C1", 3600.0)):
    digest.update(CameraRenderer(facility, camera, world).render(t).image.tobytes())
fleet = make_fleet(np.random.default_rng(3), 40)
digest.update(" ".join(style_of(NumberPaint.VARIED, loco.plate) for loco in fleet).encode())
print(digest.hexdigest())
"""


def test_a_varied_night_renders_the_same_pixels_in_every_process() -> None:
    digests = printed_under_two_salts(_RENDER_VARIED)
    assert len(digests) == 1, digests


# -- lamp glare ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("camera", "t"), LAMP_FRAMES)
def test_lamp_glare_brightens_night_frames_at_the_locomotive_and_washes_out_a_number(
    facility: Facility, camera: str, t: float
) -> None:
    plain = _frame(facility, camera, t, lighting=Lighting.NIGHT)
    glare = _frame(facility, camera, t, lighting=Lighting.NIGHT, lamp_glare=True)
    brighter = glare.image.astype(int) - plain.image
    assert (brighter >= 0).all(), "glare only adds light"
    assert brighter.max() >= 200
    # The glare comes from the locomotive's lamps: it is strongest where a locomotive is drawn.
    night = Conditions(lighting=Lighting.NIGHT)
    empty = Scenario(seed=905, initial_occupancy=0.0, arrivals_per_track_hour=0.0, conditions=night)
    bare = CameraRenderer(facility, camera, World(facility, empty))
    drawn = np.abs(plain.image.astype(int) - bare.render(t).image).max(axis=2) > 0
    strongest = brighter.max(axis=2) >= brighter.max() - 5
    assert drawn[strongest].mean() > 0.9
    # A number close to a lamp loses much of what tells its strokes from the body.
    assert plain.plates
    lost = max(
        1 - _fine_detail(glare.image, p.quad) / _fine_detail(plain.image, p.quad) for p in plain.plates
    )
    assert lost > 0.1


def test_lamp_glare_leaves_day_frames_hidden_lamps_and_a_depot_without_locomotives_alone(
    facility: Facility,
) -> None:
    camera, t = LAMP_FRAMES[0]
    day = {"lighting": Lighting.DAY}
    assert np.array_equal(
        _frame(facility, camera, t, **day).image, _frame(facility, camera, t, **day, lamp_glare=True).image
    )
    night = Conditions(lighting=Lighting.NIGHT)
    empty = Scenario(seed=905, initial_occupancy=0.0, arrivals_per_track_hour=0.0, conditions=night)
    lit = empty.model_copy(update={"conditions": night.model_copy(update={"lamp_glare": True})})
    frames = [CameraRenderer(facility, camera, World(facility, s)).render(t).image for s in (empty, lit)]
    assert np.array_equal(*frames)
    camera, t = HIDDEN_LAMP_FRAME
    plain = _frame(facility, camera, t, lighting=Lighting.NIGHT)
    assert plain.plates, "the frame shows the shunter"
    assert np.array_equal(
        plain.image, _frame(facility, camera, t, lighting=Lighting.NIGHT, lamp_glare=True).image
    )
