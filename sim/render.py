"""Draws what one calibrated camera sees: the shop floor, rails, locomotives, workers, light, noise.

Geometry is exact: every face is a plane mapped by a homography built from the camera derived from
the calibration, so a locomotive's painted ends fall where the calibration maps its true metres.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from shared.calibration import RAIL_OFFSET_M
from shared.frames import Frame
from shared.layout import Facility
from shared.projection import NEAR_PLANE_M, FloatArray, PinholeCamera
from sim.appearance import Appearance
from sim.fleet import Box, Color, boxes
from sim.glare import GLARE_STREAM, WORK_LAMP_SHARE, glare, work_lamp
from sim.neighbours import neighbours_of
from sim.scenario import Conditions, NumberPaint
from sim.textures import FaceTexture, end_texture, side_texture
from sim.truth import TruthPlate
from sim.world import LocoState, Worker, World

# Drawing reaches this far beyond the view so bodies that lean into the image are not cut off.
SCENE_MARGIN_M = 40.0
# Sodium-like shop lamps at night: warmer, and the frame darker away from the lamp pools.
NIGHT_TINT = np.array([0.8, 0.95, 1.1], dtype=np.float32)
NOISE_BANK_SIZE = 4
NOISE_BANK_SIGMA = 10.0
_SUBPIXEL_SHIFT = 4


@dataclass(frozen=True)
class Rendered:
    """A rendered frame and the painted numbers fully inside it."""

    image: Frame
    plates: list[TruthPlate]


@dataclass(frozen=True)
class _Face:
    corners: FloatArray  # 4×3, clockwise from top-left as seen from outside
    normal: FloatArray
    texture: FaceTexture | None
    color: Color
    plate: str = ""


class CameraRenderer:
    """Renders frames of one camera of a facility; cheap parts are cached at construction."""

    def __init__(self, facility: Facility, camera_id: str, world: World) -> None:
        cam = facility.cameras[camera_id]
        self.camera_id = camera_id
        self.track_id = cam.track
        self.view = cam.view
        self.world = world
        w, h = cam.resolution
        self.camera = PinholeCamera.from_calibration(cam.calibration.model, w, h, cam.hfov_deg)
        scenario = world.scenario
        self.look = (
            Appearance.drawn(scenario.seed, camera_id)
            if scenario.conditions.varied_appearance
            else Appearance()
        )
        self.neighbours = neighbours_of(facility, cam.track)
        # The camera's side of the track (+1 left): workers stand on it, the back wall on the other.
        self._near_side = 1.0 if self.camera.position[1] > 0 else -1.0
        self._background = self._draw_background()
        self._night_gain = self._lamp_gain()

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """Shape of the frames this camera delivers (height, width, 3)."""
        return (self.camera.height, self.camera.width, 3)

    def render(self, t: float, conditions: Conditions | None = None) -> Rendered:
        """The frame at simulation second t, before any camera fault."""
        conditions = conditions or self.world.scenario.conditions
        # A stable hash of the camera id: hash() is salted per process, and the same seed must render
        # the same frame in every process (training data, replays, the demo's nodes).
        key = [self.world.scenario.seed, zlib.crc32(self.camera_id.encode()), int(t * 1000)]
        rng = np.random.default_rng(key)
        img = self._background.copy()
        # Which face painted each pixel last: a number on a face that later faces cover is not visible.
        owner = np.full(img.shape[:2], -1, np.int32)
        plates: list[tuple[int, TruthPlate]] = []
        parts = self._scene_faces(
            self._locos_at(t), self.world.workers_at(self.camera_id, t), conditions.number_paint
        )
        for index, face in enumerate(parts):
            plates.extend((index, plate) for plate in self._draw_face(img, face, owner, index))
        lamps = self._lit_lamps(parts, owner) if conditions.lamp_glare else []
        img = self._expose(img, t, conditions, rng, lamps, np.random.default_rng([*key, GLARE_STREAM]))
        if conditions.timestamp_overlay:
            self._overlay(img, t)
        w, h = self.camera.width, self.camera.height
        inside = [
            p
            for index, p in plates
            if all(0 <= u < w and 0 <= v < h for u, v in p.quad) and _unoccluded(p, owner, index)
        ]
        return Rendered(img, inside)

    # -- scene -------------------------------------------------------------------------------

    def _locos_at(self, t: float) -> list[tuple[LocoState, float]]:
        """Locomotives on the own track and the neighbouring ones, in own-track metres, each with its
        track's lateral offset."""
        found = [(state, 0.0) for state in self.world.locos_at(t, self.track_id)]
        found.extend(
            (n.to_own(state), n.offset_m)
            for n in self.neighbours
            for state in self.world.locos_at(t, n.track_id)
        )
        return found

    def _scene_faces(
        self, locos: list[tuple[LocoState, float]], workers: list[Worker], paint: NumberPaint
    ) -> list[_Face]:
        """Faces in drawing order: locomotives far to near, each undercarriage first (cameras look down
        on it, and its long box would otherwise sort in front of the bodies above it); then workers,
        who stand between the cameras and the track."""
        cam_pos = self.camera.position
        ordered: list[tuple[float, list[_Face]]] = []
        for state, offset in locos:
            if (
                state.end_m < self.view.start_m - SCENE_MARGIN_M
                or state.start_m > self.view.end_m + SCENE_MARGIN_M
            ):
                continue
            under, *upper = (
                self._loco_box(state, box, cam_pos, offset, paint) for box in boxes(state.loco.series)
            )
            upper.sort(key=lambda item: -item[0])
            centre = np.array([(state.start_m + state.end_m) / 2, offset, 0.0])
            ordered.append(
                (float(np.linalg.norm(cam_pos - centre)), under[1] + [f for _, fs in upper for f in fs])
            )
        ordered.sort(key=lambda item: -item[0])
        people = sorted(
            (solid for w in workers for solid in _worker_solids(w, -self._near_side * w.offset_m, cam_pos)),
            key=lambda item: -item[0],
        )
        return [face for _, faces in ordered + people for face in faces]

    def _loco_box(
        self, state: LocoState, box: Box, cam_pos: FloatArray, offset: float, paint: NumberPaint
    ) -> tuple[float, list[_Face]]:
        length = state.loco.length_m
        if state.reversed:
            s0, s1 = state.start_m + length - box.x1, state.start_m + length - box.x0
            cab_lo, cab_hi = box.cab_at_x1, box.cab_at_x0
        else:
            s0, s1 = state.start_m + box.x0, state.start_m + box.x1
            cab_lo, cab_hi = box.cab_at_x0, box.cab_at_x1
        series, plate, hw = state.loco.series, state.loco.plate, box.half_width
        faces = []
        for face in _box_faces(s0, s1, offset, hw, box.z0, box.z1):
            kind = face[0]
            if kind == "side_neg":  # seen from the -offset side: left is low metres
                tex: FaceTexture | None = side_texture(series, plate, box, cab_lo, cab_hi, paint)
            elif kind == "side_pos":
                tex = side_texture(series, plate, box, cab_hi, cab_lo, paint)
            elif kind == "end_hi":
                tex = end_texture(series, plate, box, cab_hi, paint)
            elif kind == "end_lo":
                tex = end_texture(series, plate, box, cab_lo, paint)
            else:
                tex = None
            faces.append(_Face(face[1], face[2], tex, series.roof, plate))
        return _visible(faces, cam_pos, np.array([(s0 + s1) / 2, offset, (box.z0 + box.z1) / 2]))

    def _draw_background(self) -> Frame:
        look = self.look
        img = np.empty((self.camera.height, self.camera.width, 3), np.uint8)
        img[:] = look.ceiling
        lo, hi = self.view.start_m - SCENE_MARGIN_M, self.view.end_m + SCENE_MARGIN_M
        # The back wall stands beyond the last track on the side away from the camera.
        far = -self._near_side
        beyond = max([far * n.offset_m for n in self.neighbours if far * n.offset_m > 0], default=0.0)
        wall = far * (beyond + look.wall_gap_m)
        inward = -far * 0.5
        self._fill(img, _quad_z(lo, hi, wall, 0.0, 9.0), look.wall)
        for s in np.arange(np.floor(lo / 6) * 6, hi, 6.0):
            self._fill(img, _quad_z(s + 1.5, s + 4.5, wall + inward * 0.02, 4.5, 7.5), look.window)
            self._fill(img, _quad_z(s - 0.25, s + 0.25, wall + inward, 0.0, 9.0), look.column)
        near_edge = self.camera.position[1] + self._near_side * 15.0
        self._fill(img, _quad_ground(lo, hi, near_edge, wall), look.floor)
        for track in (0.0, *(n.offset_m for n in self.neighbours)):
            half = look.pit_half_width_m
            self._fill(img, _quad_ground(lo, hi, track - half, track + half), look.pit)
            for centre in (track - RAIL_OFFSET_M, track + RAIL_OFFSET_M):
                self._fill(img, _quad_ground(lo, hi, centre - 0.04, centre + 0.04), look.rail)
            if look.safety_line is not None:
                for centre in (track - 2.2, track + 2.2):
                    self._fill(img, _quad_ground(lo, hi, centre - 0.05, centre + 0.05), look.safety_line)
        mottling = cv2.resize(
            np.random.default_rng(7).normal(
                0, look.floor_mottle, (self.camera.height // 16, self.camera.width // 16)
            ),
            (self.camera.width, self.camera.height),
            interpolation=cv2.INTER_CUBIC,
        )
        return np.asarray(np.clip(img + mottling[..., None], 0, 255), dtype=np.uint8)

    def _lamp_gain(self) -> npt.NDArray[np.float32]:
        """Per-pixel night gain: pools of light under ceiling lamps along the track."""
        h, w = self.camera.height, self.camera.width
        gain = np.full((h, w), self.look.night_floor_gain, np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        for s in np.arange(self.view.start_m - 6, self.view.end_m + 6, self.look.lamp_spacing_m):
            uv, depth = self.camera.project(np.array([[s, 0.0, 0.0]]))
            if depth[0] <= NEAR_PLANE_M:
                continue
            radius = float(self.camera.k[0, 0] * 4.0 / depth[0])
            gain += 0.35 * np.exp(-((xx - uv[0, 0]) ** 2 + (yy - uv[0, 1]) ** 2) / (2 * radius**2))
        return np.minimum(gain, 1.0)

    # -- drawing -------------------------------------------------------------------------------

    def _clip_project(self, corners: FloatArray) -> FloatArray | None:
        """Clip a planar polygon at the near plane and project it; None if nothing is in front."""
        pts = self.camera.to_camera(corners)
        clipped = _clip_near(pts)
        if len(clipped) < 3:
            return None
        uvw = clipped @ self.camera.k.T
        return np.asarray(uvw[:, :2] / uvw[:, 2:3])

    def _fill(
        self,
        img: Frame,
        corners: FloatArray,
        color: Color,
        owner: npt.NDArray[np.int32] | None = None,
        index: int = -1,
    ) -> None:
        uv = self._clip_project(corners)
        if uv is None:
            return
        pts = np.round(uv * (1 << _SUBPIXEL_SHIFT)).astype(np.int64)
        if np.abs(pts).max() > 2**30:
            pts = np.clip(pts, -(2**30), 2**30)
        cv2.fillPoly(img, [pts.astype(np.int32)], color, cv2.LINE_8, _SUBPIXEL_SHIFT)
        if owner is not None:
            cv2.fillPoly(owner, [pts.astype(np.int32)], index, cv2.LINE_8, _SUBPIXEL_SHIFT)

    def _draw_face(
        self, img: Frame, face: _Face, owner: npt.NDArray[np.int32], index: int
    ) -> list[TruthPlate]:
        if face.texture is None:
            self._fill(img, face.corners, face.color, owner, index)
            return []
        uv = self._clip_project(face.corners)
        if uv is None:
            return []
        h, w = img.shape[:2]
        x0, y0 = np.floor(uv.min(axis=0)).astype(int)
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return []
        tex = face.texture.image
        tl, tr, _, bl = face.corners
        ex, ey = (tr - tl) / tex.shape[1], (bl - tl) / tex.shape[0]
        r, t, k = self.camera.r, self.camera.t, self.camera.k
        homography = k @ np.stack([r @ ex, r @ ey, r @ tl + t], axis=1)
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
        warped = cv2.warpPerspective(
            tex,
            shift @ homography,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        poly = np.round((uv - [x0, y0]) * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [poly], 255, cv2.LINE_8, _SUBPIXEL_SHIFT)
        roi = img[y0:y1, x0:x1]
        np.copyto(roi, warped, where=mask[..., None].astype(bool))
        owner[y0:y1, x0:x1][mask.astype(bool)] = index
        return [self._plate_label(face, homography, rect) for rect in face.texture.plates]

    def _plate_label(
        self, face: _Face, homography: FloatArray, rect: tuple[int, int, int, int]
    ) -> TruthPlate:
        x, y, w, h = rect
        corners = np.array([[x, y, 1], [x + w, y, 1], [x + w, y + h, 1], [x, y + h, 1]], dtype=np.float64)
        proj = corners @ homography.T
        depth_ok = bool(np.all(proj[:, 2] > 0))
        uv = proj[:, :2] / proj[:, 2:3] if depth_ok else np.full((4, 2), -1.0)
        return TruthPlate(plate=face.plate, quad=[(float(u), float(v)) for u, v in uv])

    # -- exposure ------------------------------------------------------------------------------

    def _expose(
        self,
        img: Frame,
        t: float,
        conditions: Conditions,
        rng: np.random.Generator,
        lamps: list[tuple[float, float, float, float]],
        glare_rng: np.random.Generator,
    ) -> Frame:
        daylight = self.world.daylight(t)
        frame = img.astype(np.float32)
        if daylight < 1.0:
            night = self._night_gain[..., None] * NIGHT_TINT
            gain = daylight + (1.0 - daylight) * night
            frame *= gain
            if lamps:
                frame += glare(self.camera, lamps, 1.0 - daylight, glare_rng)
        else:
            frame *= np.float32(1.0 + 0.04 * np.sin(t / 600.0))  # passing clouds
        blur = rng.uniform(*conditions.blur_sigma_px)
        if blur > 0.05:
            frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), blur), dtype=np.float32)
        shake = rng.uniform(*conditions.motion_blur_px)
        if shake >= 1.5:
            kernel = _motion_kernel(round(shake), float(rng.uniform(0, 180)))
            frame = np.asarray(cv2.filter2D(frame, -1, kernel), dtype=np.float32)
        sigma = rng.uniform(*conditions.noise_sigma) * (2.0 - daylight)
        if sigma > 0:
            bank = _noise_bank(self.camera.height, self.camera.width)
            noise = bank[int(rng.integers(len(bank)))]
            frame += noise.astype(np.float32) * np.float32(sigma / NOISE_BANK_SIGMA)
        return np.clip(frame, 0, 255).astype(np.uint8)

    def _lit_lamps(
        self, parts: list[_Face], owner: npt.NDArray[np.int32]
    ) -> list[tuple[float, float, float, float]]:
        """Image position, depth and brightness share (u, v, metres, share) of each lit lamp left in
        sight after drawing: the lamps textures paint, and work lamps hung beside painted numbers."""
        h, w = owner.shape
        seed = self.world.scenario.seed
        found = []
        for index, face in enumerate(parts):
            if face.texture is None:
                continue
            spots: list[tuple[float, float, float]] = [(x, y, 1.0) for x, y in face.texture.lamps]
            spots += [
                (*at, WORK_LAMP_SHARE)
                for rect in face.texture.plates
                if (at := work_lamp(seed, face.plate, rect)) is not None
            ]
            if not spots:
                continue
            tex_h, tex_w = face.texture.image.shape[:2]
            tl, tr, _, bl = face.corners
            points = np.array([tl + (tr - tl) * x / tex_w + (bl - tl) * y / tex_h for x, y, _ in spots])
            uv, depth = self.camera.project(points)
            for (u, v), d, (_, _, share) in zip(uv, depth, spots, strict=True):
                if d > NEAR_PLANE_M and 0 <= u < w and 0 <= v < h and owner[int(v), int(u)] == index:
                    found.append((float(u), float(v), float(d), share))
        return found

    def _overlay(self, img: Frame, t: float) -> None:
        stamp = self.world.scenario.start + timedelta(seconds=t)
        text = f"{self.camera_id}  {stamp:%Y-%m-%d %H:%M:%S}"
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 1)
        cv2.rectangle(img, (8, 8), (24 + w, 24 + h), (20, 20, 20), -1)
        cv2.putText(img, text, (16, 16 + h), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (235, 235, 235), 1, cv2.LINE_AA)


def _box_faces(
    s0: float, s1: float, d: float, hw: float, z0: float, z1: float
) -> list[tuple[str, FloatArray, FloatArray]]:
    """The five outer faces of a box (no floor), corners clockwise from top-left seen from outside."""
    a, lo, hi = np.array, d - hw, d + hw
    return [
        ("side_neg", a([[s0, lo, z1], [s1, lo, z1], [s1, lo, z0], [s0, lo, z0]]), a([0.0, -1.0, 0.0])),
        ("side_pos", a([[s1, hi, z1], [s0, hi, z1], [s0, hi, z0], [s1, hi, z0]]), a([0.0, 1.0, 0.0])),
        ("end_hi", a([[s1, lo, z1], [s1, hi, z1], [s1, hi, z0], [s1, lo, z0]]), a([1.0, 0.0, 0.0])),
        ("end_lo", a([[s0, hi, z1], [s0, lo, z1], [s0, lo, z0], [s0, hi, z0]]), a([-1.0, 0.0, 0.0])),
        ("roof", a([[s0, hi, z1], [s1, hi, z1], [s1, lo, z1], [s0, lo, z1]]), a([0.0, 0.0, 1.0])),
    ]


def _visible(faces: list[_Face], cam_pos: FloatArray, centre: FloatArray) -> tuple[float, list[_Face]]:
    """Faces turned towards the camera, and the solid's distance for back-to-front drawing."""
    shown = [f for f in faces if float(np.dot(f.normal, cam_pos - f.corners.mean(axis=0))) > 0]
    return float(np.linalg.norm(cam_pos - centre)), shown


def _worker_solids(worker: Worker, d: float, cam_pos: FloatArray) -> list[tuple[float, list[_Face]]]:
    s = worker.track_m
    parts = [
        (0.18, 0.12, 0.0, 0.85, (90, 50, 30)),  # legs
        (0.24, 0.15, 0.85, 1.5, (0, 120, 255)),  # hi-vis jacket
        (0.1, 0.1, 1.5, 1.72, (150, 170, 210)),  # head
        (0.13, 0.13, 1.72, 1.82, (0, 215, 255)),  # helmet
    ]
    solids = []
    for half_s, half_d, z0, z1, color in parts:
        faces = [
            _Face(corners, normal, None, color)
            for _, corners, normal in _box_faces(s - half_s, s + half_s, d, half_d, z0, z1)
        ]
        # Stacked parts share a centre line; draw the upper ones last, as the camera looks down on them.
        dist, shown = _visible(faces, cam_pos, np.array([s, d, 0.0]))
        solids.append((dist - 0.01 * z0, shown))
    return solids


def _quad_ground(s0: float, s1: float, d0: float, d1: float) -> FloatArray:
    return np.array([[s0, d0, 0.0], [s1, d0, 0.0], [s1, d1, 0.0], [s0, d1, 0.0]])


def _quad_z(s0: float, s1: float, d: float, z0: float, z1: float) -> FloatArray:
    return np.array([[s0, d, z1], [s1, d, z1], [s1, d, z0], [s0, d, z0]])


def _clip_near(points: FloatArray) -> FloatArray:
    """Sutherland–Hodgman clip of a polygon in camera coordinates against z = NEAR_PLANE_M."""
    out = []
    n = len(points)
    for i in range(n):
        cur, nxt = points[i], points[(i + 1) % n]
        cur_in, nxt_in = cur[2] >= NEAR_PLANE_M, nxt[2] >= NEAR_PLANE_M
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            frac = (NEAR_PLANE_M - cur[2]) / (nxt[2] - cur[2])
            out.append(cur + frac * (nxt - cur))
    return np.array(out) if out else np.zeros((0, 3))


def _motion_kernel(length: int, angle_deg: float) -> npt.NDArray[np.float32]:
    line = np.zeros((length, length), np.float32)
    line[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(line, rot, (length, length))
    return np.asarray(kernel / max(float(kernel.sum()), 1e-6), dtype=np.float32)


@lru_cache(maxsize=4)
def _noise_bank(height: int, width: int) -> list[npt.NDArray[np.int8]]:
    """A few noise fields shared by all cameras of one resolution; drawing fresh noise costs more."""
    rng = np.random.default_rng(12345)
    return [
        np.clip(rng.normal(0, NOISE_BANK_SIGMA, (height, width, 3)), -127, 127).astype(np.int8)
        for _ in range(NOISE_BANK_SIZE)
    ]


def _unoccluded(plate: TruthPlate, owner: npt.NDArray[np.int32], index: int) -> bool:
    """Whether the face that carries the number still shows at its centre and corners (insets)."""
    quad = np.array(plate.quad)
    centre = quad.mean(axis=0)
    points = [centre, *(centre + 0.8 * (corner - centre) for corner in quad)]
    h, w = owner.shape
    return all(0 <= int(y) < h and 0 <= int(x) < w and owner[int(y), int(x)] == index for x, y in points)
