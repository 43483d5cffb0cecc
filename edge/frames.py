"""The one picture type of the edge: a BGR frame as OpenCV decodes it, from capture to thumbnails."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]
