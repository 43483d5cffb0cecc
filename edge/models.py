"""The node's position estimators, opened from its config: its own flow's, which must load, and its
shadow flows', each of which may fail alone (reported by /healthz, the main flow runs on)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edge.config import EdgeConfig, LpeConfig
from edge.lpe.estimator import PositionEstimator
from edge.lpe.openvino_lpe import LpeModelError, OpenVinoLpe
from shared.layout import Camera

log = logging.getLogger(__name__)


def open_lpe(lpe: LpeConfig, cameras: Mapping[str, Camera], threads: int | None = None) -> OpenVinoLpe:
    """Load and compile the LPE for these cameras; raises LpeModelError."""
    return OpenVinoLpe(
        lpe.model_dir,
        cameras,
        precision=lpe.precision,
        device=lpe.device,
        batch=min(lpe.batch, len(cameras)),
        requests=lpe.requests,
        hint=lpe.hint,
        threads=threads,
    )


def open_shadows(
    config: EdgeConfig, cameras: Mapping[str, Camera]
) -> tuple[dict[str, PositionEstimator], dict[str, str]]:
    """The estimator of each shadow flow that loads, and the error of each that does not."""
    loaded: dict[str, PositionEstimator] = {}
    errors: dict[str, str] = {}
    for flow, shadow in config.shadow.items():
        try:
            estimator = open_lpe(shadow.lpe, cameras, threads=shadow.threads)
        except LpeModelError as exc:
            log.error("edge node %s: shadow flow %s stays off: %s", config.node_id, flow, exc)
            errors[flow] = str(exc)
            continue
        log.info("edge node %s: flow %s runs %s in shadow", config.node_id, flow, estimator.model.version)
        loaded[flow] = estimator
    return loaded, errors
