"""Where the LPE's IR files lie and which variants exist: plain names, without loading OpenVINO.

The edge config checks these at start (a missing IR fails the config, not the first inference), so
they live apart from `openvino_lpe`, whose import loads the whole OpenVINO runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Precision = Literal["fp32", "int8"]
PerformanceHint = Literal["LATENCY", "THROUGHPUT"]


def model_path(model_dir: Path, precision: Precision) -> Path:
    """Where the IR of a precision lies in a model version folder."""
    return model_dir / f"lpe_{precision}.xml"
