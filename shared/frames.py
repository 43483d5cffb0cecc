"""The one picture type: a BGR frame as OpenCV decodes it (height × width × 3, uint8), from the
cameras through the LPE and thumbnails to the recognisers, and as the simulator renders it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
