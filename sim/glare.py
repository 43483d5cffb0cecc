"""Lamp glare at night (Conditions.lamp_glare): the light a lens adds around lit lamps, and the work
lamps depot staff hang beside cab numbers."""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt

from shared.projection import PinholeCamera
from sim.textures import PX_PER_M

# A lens blooms a bright core and a wide halo around each,
# sized in metres at the lamp so that the halo reaches the numbers painted a metre or two away.
GLARE_CORE_M = 0.3
GLARE_HALO_M = 1.3
GLARE_CORE_SHARE = 0.5
GLARE_LEVEL = (450.0, 750.0)  # grey levels at the centre, drawn per lamp and frame
GLARE_TINT = np.array([0.85, 0.95, 1.0], dtype=np.float32)  # headlights are white with a warm edge
GLARE_STREAM = 77  # the glare's own random stream, so the other draws of a frame stay as they were
# Depot staff hang work lamps on the handrails beside cab numbers at night: one number in this many has
# one, this far beyond one end of it and this bright against a headlight.
WORK_LAMP_ONE_IN = 2
WORK_LAMP_OFFSET_M = 0.3
WORK_LAMP_SHARE = 0.5


def glare(
    camera: PinholeCamera,
    lamps: list[tuple[float, float, float, float]],
    strength: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Light a lens adds around lit lamps (a core and a halo each), scaled by how dark it is."""
    h, w = camera.height, camera.width
    glow = np.zeros((h, w), np.float32)
    focal = float(camera.k[0, 0])
    for u, v, depth, share in lamps:
        level = strength * share * float(rng.uniform(*GLARE_LEVEL))
        core, halo = focal * GLARE_CORE_M / depth, focal * GLARE_HALO_M / depth
        reach = int(3 * halo) + 1
        x0, x1 = max(int(u) - reach, 0), min(int(u) + reach + 1, w)
        y0, y1 = max(int(v) - reach, 0), min(int(v) + reach + 1, h)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        r2 = ((xx - u) ** 2 + (yy - v) ** 2).astype(np.float32)
        glow[y0:y1, x0:x1] += level * (
            GLARE_CORE_SHARE * np.exp(-r2 / (2 * core**2))
            + (1 - GLARE_CORE_SHARE) * np.exp(-r2 / (2 * halo**2))
        )
    return glow[..., None] * GLARE_TINT


def work_lamp(seed: int, plate: str, rect: tuple[int, int, int, int]) -> tuple[float, float] | None:
    """Where a work lamp hangs beside a painted number (texture pixels), if one does: the same choice
    for a number in every frame and process (a stable hash, not hash())."""
    pick = zlib.crc32(f"{seed}:{plate}:{rect}".encode())
    if pick % WORK_LAMP_ONE_IN:
        return None
    x, y, w, h = rect
    beyond = WORK_LAMP_OFFSET_M * PX_PER_M
    return (x - beyond if pick & 0x100 else x + w + beyond, y + h / 2)
