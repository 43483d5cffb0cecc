"""Thumbnails from the simulator, cropped by the edge's own ThumbnailMaker from ground-truth extents,
labelled with series and plate: the data the recognisers are trained and measured on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from rich.progress import track

from edge.config import ThumbnailConfig
from edge.thumbnails import ThumbnailMaker
from shared.layout import Facility, load_facility
from shared.messages import LocoExtent
from sim.scenario import Conditions, Scenario
from sim.source import SimCamera, SimUrl
from sim.truth import visible_extents
from sim.world import World

REPO = Path(__file__).resolve().parents[2]
LAYOUT = REPO / "examples" / "facility.yaml"
DATA_DIR = REPO / "data" / "recognition"
# A thumbnail showing less of a locomotive than this (metres) carries no plate worth reading.
MIN_VISIBLE_M = 6.0
# A plate counts as readable when its quad keeps this far (frame pixels) from the crop's edges: the quad
# is the number's nominal box, and italic glyphs reach a little beyond it.
PLATE_MARGIN_PX = 12


@dataclass(frozen=True)
class Thumb:
    """One labelled thumbnail."""

    image: npt.NDArray[np.uint8]
    series: str
    plate: str
    loco_key: str  # the same physical locomotive across thumbnails (for voting)
    camera_id: str
    plate_visible: bool = False  # the whole painted number lies inside the crop
    span: tuple[float, float] = (0.0, 0.0)  # track metres the crop shows


def generate(
    facility: Facility, scenario: Scenario, times_s: list[float], progress: str | None = None
) -> list[Thumb]:
    """Thumbnails of every locomotive visible at the given simulation seconds, on every camera."""
    world = World(facility, scenario)
    maker = ThumbnailMaker(facility.cameras, ThumbnailConfig())
    cameras = {
        cid: SimCamera(facility, world, SimUrl(camera_id=cid, realtime=False))
        for cid in sorted(facility.cameras)
    }
    out = []
    steps = track(times_s, description=progress) if progress else times_s
    for t in steps:
        locos = world.locos_at(t)
        for cid, camera in cameras.items():
            extents = [
                e for e in visible_extents(facility, cid, locos) if e.end_m - e.start_m >= MIN_VISIBLE_M
            ]
            if not extents:
                continue
            shot = camera.frame_at(t)
            frame = shot.image
            if frame is None:
                continue
            for e in extents:
                extent = LocoExtent(
                    start_m=e.start_m,
                    end_m=e.end_m,
                    start_beyond_view=e.start_beyond_view,
                    end_beyond_view=e.end_beyond_view,
                    confidence=1.0,
                )
                bbox = maker._bbox(cid, extent, frame.shape[1], frame.shape[0])
                if bbox is None:
                    continue
                x, y, w, h = bbox
                crop = frame[y : y + h, x : x + w]
                if w > maker.config.max_width:
                    scale = maker.config.max_width / w
                    crop = cv2.resize(
                        crop, (maker.config.max_width, max(1, int(h * scale))), interpolation=cv2.INTER_AREA
                    )
                ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, maker.config.jpeg_quality])
                assert ok
                image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
                quads = [np.array(p.quad) for p in shot.plates if p.plate == e.plate]
                visible = any(
                    (q[:, 0] >= x + PLATE_MARGIN_PX).all()
                    and (q[:, 0] <= x + w - PLATE_MARGIN_PX).all()
                    and (q[:, 1] >= y + PLATE_MARGIN_PX).all()
                    and (q[:, 1] <= y + h - PLATE_MARGIN_PX).all()
                    for q in quads
                )
                out.append(
                    Thumb(
                        np.asarray(image, np.uint8),
                        e.series,
                        e.plate,
                        e.plate,
                        cid,
                        visible,
                        (e.start_m, e.end_m),
                    )
                )
    return out


def save(thumbs: list[Thumb], folder: Path) -> None:
    """JPEGs and a labels.json, for looking at."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i, thumb in enumerate(thumbs):
        name = f"{i:05d}.jpg"
        cv2.imwrite(str(folder / name), thumb.image)
        labels.append({"file": name, "series": thumb.series, "plate": thumb.plate, "camera": thumb.camera_id})
    (folder / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    facility = load_facility(LAYOUT)
    thumbs = generate(
        facility, Scenario(seed=3, conditions=Conditions()), [36000 + 1800 * k for k in range(4)], "thumbs"
    )
    save(thumbs, DATA_DIR / "peek")
    print(len(thumbs))  # noqa: T201
