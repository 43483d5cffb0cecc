"""The LPE on OpenVINO: rectify frames into strips, infer them in batches asynchronously, decode.

Frames of a node's cameras are packed into fixed-size batches; an AsyncInferQueue keeps several
batches in flight, so rectifying the next batch overlaps inference of the previous one, and each
batch's results are decoded in the completion callback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openvino as ov

from edge.lpe.decode import ColumnScores, decode
from edge.lpe.model_files import PerformanceHint as PerformanceHint
from edge.lpe.model_files import Precision as Precision
from edge.lpe.model_files import model_path as model_path
from shared.errors import DepotwatchError
from shared.frames import Frame
from shared.layout import Camera
from shared.messages import LocoExtent, ModelRef
from shared.openvino_model import compile_ir
from shared.strip import STRIP_HEIGHT, STRIP_WIDTH, StripGeometry

# PerformanceHint, Precision and model_path are re-exported (`as`) for callers that load the LPE; the
# config imports them from model_files, without OpenVINO.

log = logging.getLogger(__name__)

INPUT_SHAPE = (STRIP_HEIGHT, STRIP_WIDTH, 3)
OUTPUT_CHANNELS = 3


class LpeModelError(DepotwatchError):
    """The LPE model cannot be loaded or compiled: missing or invalid IR, unknown device."""


@dataclass
class StageTimes:
    """Seconds spent per stage since the last reset, for the benchmark's breakdown."""

    rectify: float = 0.0
    infer_wait: float = 0.0
    decode: float = 0.0
    frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_decode(self, seconds: float) -> None:
        """Count decoding time (called from OpenVINO's completion callbacks, hence the lock)."""
        with self._lock:
            self.decode += seconds


class OpenVinoLpe:
    """PositionEstimator on OpenVINO IR."""

    def __init__(
        self,
        model_dir: Path,
        cameras: Mapping[str, Camera],
        *,
        precision: Precision = "int8",
        device: str = "CPU",
        batch: int = 4,
        requests: int = 2,
        hint: PerformanceHint = "LATENCY",
        inference_precision: str | None = None,
        threads: int | None = None,
    ) -> None:
        xml = model_path(model_dir, precision)
        if batch < 1 or requests < 1:
            raise LpeModelError(f"batch ({batch}) and requests ({requests}) must be at least 1")
        self._model = ModelRef(name="lpe", version=f"{model_dir.name}-{precision}")
        self.batch = batch
        self.geometries = {cid: StripGeometry.for_camera(cid, cam) for cid, cam in cameras.items()}
        self.compiled = compile_ir(
            xml,
            error=LpeModelError,
            what="LPE model",
            device=device,
            shape=[batch, *INPUT_SHAPE],
            hint=hint,
            inference_precision=inference_precision,
            threads=threads,
            check=lambda model: _check_signature(model, xml),
        )
        self.device = device
        self.inference_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._queue = ov.AsyncInferQueue(self.compiled, requests)
        self._queue.set_callback(self._on_done)
        self._results: list[Any] = []
        self.times = StageTimes()
        log.info(
            "LPE %s loaded on %s (batch %d, %d requests, %s, inference precision %s)",
            xml,
            device,
            batch,
            requests,
            hint,
            self.inference_precision,
        )

    @property
    def model(self) -> ModelRef:
        """Name and version reported with every detection."""
        return self._model

    def estimate(self, frames: Sequence[tuple[str, Frame]]) -> list[list[LocoExtent]]:
        """Extents per (camera id, frame), in order."""
        geometries = []
        for cid, _ in frames:
            geometry = self.geometries.get(cid)
            if geometry is None:
                raise LpeModelError(f"camera {cid!r} is not one this estimator was built for")
            geometries.append(geometry)
        self._results = [None] * len(frames)
        for start in range(0, len(frames), self.batch):
            t0 = time.perf_counter()
            strips = np.zeros((self.batch, *INPUT_SHAPE), np.uint8)
            chunk = list(range(start, min(start + self.batch, len(frames))))
            for slot, index in enumerate(chunk):
                geometries[index].rectify(frames[index][1], out=strips[slot])
            self.times.rectify += time.perf_counter() - t0
            self._queue.start_async({0: strips}, userdata=(chunk, [geometries[i] for i in chunk]))
        t0 = time.perf_counter()
        self._queue.wait_all()
        self.times.infer_wait += time.perf_counter() - t0
        self.times.frames += len(frames)
        return list(self._results)

    def recalibrate(self, camera_id: str, camera: Camera) -> None:
        """Rectify `camera_id`'s next frames with `camera`'s calibration and view; raises LpeModelError
        for a camera this estimator was not built for."""
        if camera_id not in self.geometries:
            raise LpeModelError(f"camera {camera_id!r} is not one this estimator was built for")
        # Built before it is swapped in: `estimate` takes each frame's geometry once, and a batch in
        # flight decodes with the geometry it was rectified with (its userdata).
        self.geometries[camera_id] = StripGeometry.for_camera(camera_id, camera)

    def close(self) -> None:
        """Finish in-flight inference."""
        self._queue.wait_all()

    def infer_strips(self, strips: npt.NDArray[np.uint8]) -> list[ColumnScores]:
        """Column scores for already-rectified strips (N×64×256×3), synchronously."""
        scores: list[ColumnScores] = []
        request = self.compiled.create_infer_request()
        for start in range(0, len(strips), self.batch):
            chunk = strips[start : start + self.batch]
            padded = np.zeros((self.batch, *INPUT_SHAPE), np.uint8)
            padded[: len(chunk)] = chunk
            out = request.infer({0: padded})[0]
            scores.extend(_scores(out[i]) for i in range(len(chunk)))
        return scores

    def _on_done(self, request: ov.InferRequest, userdata: tuple[list[int], list[StripGeometry]]) -> None:
        t0 = time.perf_counter()
        chunk, geometries = userdata
        out = request.get_output_tensor(0).data
        for slot, (index, geometry) in enumerate(zip(chunk, geometries, strict=True)):
            self._results[index] = decode(
                _scores(out[slot]), geometry.view_start_m, geometry.metres_per_column
            )
        self.times.add_decode(time.perf_counter() - t0)


def _scores(columns: npt.NDArray[np.float32]) -> ColumnScores:
    return ColumnScores(
        occupancy=np.array(columns[0], np.float32),
        start_edge=np.array(columns[1], np.float32),
        end_edge=np.array(columns[2], np.float32),
    )


def _check_signature(model: ov.Model, xml: Path) -> None:
    """The IR must take u8 N×64×256×3 strips and give N×3×256 column scores."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise LpeModelError(f"{xml}: expected one input and one output")
    shape = model.input(0).get_partial_shape()
    if shape.rank.get_length() != 4 or [d.get_length() for d in list(shape)[1:]] != list(INPUT_SHAPE):
        raise LpeModelError(f"{xml}: input shape {shape} is not [N, {STRIP_HEIGHT}, {STRIP_WIDTH}, 3]")
    if model.input(0).get_element_type() != ov.Type.u8:
        raise LpeModelError(f"{xml}: input must be u8, is {model.input(0).get_element_type()}")
    out = model.output(0).get_partial_shape()
    if [d.get_length() for d in list(out)[1:]] != [OUTPUT_CHANNELS, STRIP_WIDTH]:
        raise LpeModelError(f"{xml}: output shape {out} is not [N, {OUTPUT_CHANNELS}, {STRIP_WIDTH}]")
