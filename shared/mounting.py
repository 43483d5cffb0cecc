"""How a camera is mounted, recovered from its calibration and lens: height above the rail head,
lateral distance from the track's centreline, field of view, the stretch of track it sees, roll. What a
position estimator has been shown to work for is stated in these terms (its envelope, in the model's
folder), so a camera mounted outside it can be named before its detections are trusted."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.layout import Camera
from shared.projection import PinholeCamera


@dataclass(frozen=True)
class Mounting:
    """A camera's mounting, in metres and degrees."""

    height_m: float  # above the rail head
    lateral_m: float  # from the centreline, positive to the left facing increasing metres
    hfov_deg: float
    view_m: float  # length of the track stretch whose centreline is in the image
    roll_deg: float  # rotation about the optical axis; 0 for a level camera


def mounting_of(camera: Camera) -> Mounting:
    """The mounting a camera's calibration and lens imply."""
    width, height = camera.resolution
    pinhole = PinholeCamera.from_calibration(camera.calibration.model, width, height, camera.hfov_deg)
    _, y, z = (float(v) for v in pinhole.position)
    # The image's right and down axes in track coordinates: a level camera keeps its right axis
    # horizontal, and rolling it by a turns that axis up by a in the plane of the two.
    right, down = pinhole.r[0], pinhole.r[1]
    roll = math.degrees(math.atan2(float(right[2]), -float(down[2])))
    return Mounting(
        height_m=round(z, 2),
        lateral_m=round(y, 2),
        hfov_deg=camera.hfov_deg,
        view_m=round(camera.view.end_m - camera.view.start_m, 2),
        roll_deg=round(roll, 2) + 0.0,  # never -0.0
    )
