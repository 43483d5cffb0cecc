"""How a camera's part of the shop looks: floor, walls, pit, rails, markings and lamps.

Real depots differ in all of these, and a model trained on one look learns that look; training sets
draw a look per camera (`Appearance.drawn`), the demo keeps the one default look.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from sim.fleet import Color


@dataclass(frozen=True)
class Appearance:
    """Colours and sizes of one camera's surroundings (BGR colours)."""

    floor: Color = (128, 128, 122)
    wall: Color = (160, 165, 165)
    window: Color = (215, 220, 222)
    column: Color = (120, 125, 130)
    ceiling: Color = (92, 96, 100)
    rail: Color = (175, 175, 185)
    pit: Color = (45, 45, 48)
    pit_half_width_m: float = 0.62
    safety_line: Color | None = (0, 200, 230)
    # The back wall stands this far beyond the last track on the side away from the camera.
    wall_gap_m: float = 9.0
    floor_mottle: float = 6.0
    lamp_spacing_m: float = 8.0
    night_floor_gain: float = 0.12

    @classmethod
    def drawn(cls, seed: int, camera_id: str) -> Appearance:
        """A look drawn from the range depots show, the same for a seed and camera in every process."""
        rng = np.random.default_rng([seed, zlib.crc32(camera_id.encode()), 23])

        def grey(lo: int, hi: int, tint: int = 12) -> Color:
            base = int(rng.integers(lo, hi))
            b, g, r = (int(np.clip(base + rng.integers(-tint, tint + 1), 0, 255)) for _ in range(3))
            return (b, g, r)

        floor = grey(55, 200, 18)
        return cls(
            floor=floor,
            wall=grey(70, 230, 25),
            window=grey(150, 250, 10),
            column=grey(50, 200, 20),
            ceiling=grey(40, 160, 15),
            rail=grey(90, 230, 20),
            pit=grey(15, 110, 10),
            pit_half_width_m=float(rng.uniform(0.5, 0.75)),
            safety_line=(
                None
                if rng.random() < 0.35
                else ((0, 200, 230), (0, 220, 255), (240, 240, 240), (40, 40, 220))[int(rng.integers(4))]
            ),
            wall_gap_m=float(rng.uniform(4.0, 14.0)),
            floor_mottle=float(rng.uniform(2.0, 16.0)),
            lamp_spacing_m=float(rng.uniform(5.0, 12.0)),
            night_floor_gain=float(rng.uniform(0.05, 0.3)),
        )
