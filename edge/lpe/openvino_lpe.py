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

from edge.lpe.decode import ColumnScores, decode_strip
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
# Version 2 models also read each strip's validity mask and scale (1.0.0 reads the strip alone).
GEOMETRY_INPUTS = ("valid", "metres_per_column")


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
        signature: list[bool] = []
        self.compiled = compile_ir(
            xml,
            error=LpeModelError,
            what="LPE model",
            device=device,
            batch=batch,
            hint=hint,
            inference_precision=inference_precision,
            threads=threads,
            check=lambda model: signature.append(_check_signature(model, xml)),
        )
        self.reads_geometry = signature[0]
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
            # 1.0.0 reads the strips alone; a version 2 model also its cameras' masks and scales.
            batch = (
                self.batch_inputs(strips, *self.geometry_inputs([geometries[i] for i in chunk]))
                if self.reads_geometry
                else {0: strips}
            )
            self.times.rectify += time.perf_counter() - t0
            self._queue.start_async(batch, userdata=(chunk, [geometries[i] for i in chunk]))
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

    def geometry_inputs(
        self, geometries: Sequence[StripGeometry]
    ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
        """The validity masks (N×64×256) and metres per column (N×1) of strips rectified with
        `geometries`, as a version 2 model reads them beside the strips."""
        valid = (
            np.stack([g.valid for g in geometries])
            if geometries
            else np.zeros((0, *INPUT_SHAPE[:2]), np.uint8)
        )
        scale = np.array([[g.metres_per_column] for g in geometries], np.float32).reshape(-1, 1)
        return valid, scale

    def infer_strips(
        self,
        strips: npt.NDArray[np.uint8],
        valid: npt.NDArray[np.uint8],
        metres_per_column: npt.NDArray[np.float32],
    ) -> list[ColumnScores]:
        """Column scores for already-rectified strips (N×64×256×3) with their validity masks (N×64×256)
        and metres per column (N×1), synchronously."""
        scores: list[ColumnScores] = []
        request = self.compiled.create_infer_request()
        for start in range(0, len(strips), self.batch):
            end = start + self.batch
            out = request.infer(
                self.batch_inputs(strips[start:end], valid[start:end], metres_per_column[start:end])
            )[0]
            scores.extend(_scores(out[i]) for i in range(len(strips[start:end])))
        return scores

    def batch_inputs(
        self,
        strips: npt.NDArray[np.uint8],
        valid: npt.NDArray[np.uint8],
        metres_per_column: npt.NDArray[np.float32],
    ) -> dict[int, npt.NDArray[Any]]:
        """One batch's inputs as the model takes them, padded to the compiled batch size."""
        padded = strips
        if len(strips) < self.batch:
            padded = np.zeros((self.batch, *INPUT_SHAPE), np.uint8)
            padded[: len(strips)] = strips
        if not self.reads_geometry:
            return {0: padded}
        mask = np.zeros((self.batch, *INPUT_SHAPE[:2]), np.uint8)
        mask[: len(valid)] = valid
        # Padding rows get a plausible scale: log(0) would give the network an infinity.
        scale = np.full((self.batch, 1), 0.05, np.float32)
        scale[: len(metres_per_column)] = metres_per_column
        return {0: padded, 1: mask, 2: scale}

    def _on_done(self, request: ov.InferRequest, userdata: tuple[list[int], list[StripGeometry]]) -> None:
        t0 = time.perf_counter()
        chunk, geometries = userdata
        out = request.get_output_tensor(0).data
        for slot, (index, geometry) in enumerate(zip(chunk, geometries, strict=True)):
            self._results[index] = decode_strip(_scores(out[slot]), geometry)
        self.times.add_decode(time.perf_counter() - t0)


def _scores(columns: npt.NDArray[np.float32]) -> ColumnScores:
    return ColumnScores(
        occupancy=np.array(columns[0], np.float32),
        start_edge=np.array(columns[1], np.float32),
        end_edge=np.array(columns[2], np.float32),
    )


def _check_signature(model: ov.Model, xml: Path) -> bool:
    """The IR must take u8 N×64×256×3 strips (version 2: and u8 N×64×256 validity masks and f32 N×1
    metres per column, in that order) and give N×3×256 column scores; True for version 2."""
    reads_geometry = len(model.inputs) == 3
    if len(model.inputs) not in (1, 3) or len(model.outputs) != 1:
        raise LpeModelError(
            f"{xml}: expected one input (strips) or three (strips, valid, metres_per_column) and one output"
        )
    if reads_geometry:
        names = [model.input(i).get_any_name() for i in (1, 2)]
        if names != list(GEOMETRY_INPUTS):
            raise LpeModelError(f"{xml}: inputs 2 and 3 are {names}, expected {list(GEOMETRY_INPUTS)}")
        valid, scale = (model.input(i).get_partial_shape() for i in (1, 2))
        if [d.get_length() for d in list(valid)[1:]] != list(INPUT_SHAPE[:2]) or model.input(
            1
        ).get_element_type() != ov.Type.u8:
            raise LpeModelError(
                f"{xml}: input 'valid' must be u8 [N, {STRIP_HEIGHT}, {STRIP_WIDTH}], is {valid}"
            )
        if [d.get_length() for d in list(scale)[1:]] != [1] or model.input(
            2
        ).get_element_type() != ov.Type.f32:
            raise LpeModelError(f"{xml}: input 'metres_per_column' must be f32 [N, 1], is {scale}")
    shape = model.input(0).get_partial_shape()
    if shape.rank.get_length() != 4 or [d.get_length() for d in list(shape)[1:]] != list(INPUT_SHAPE):
        raise LpeModelError(f"{xml}: input shape {shape} is not [N, {STRIP_HEIGHT}, {STRIP_WIDTH}, 3]")
    if model.input(0).get_element_type() != ov.Type.u8:
        raise LpeModelError(f"{xml}: input must be u8, is {model.input(0).get_element_type()}")
    out = model.output(0).get_partial_shape()
    if [d.get_length() for d in list(out)[1:]] != [OUTPUT_CHANNELS, STRIP_WIDTH]:
        raise LpeModelError(f"{xml}: output shape {out} is not [N, {OUTPUT_CHANNELS}, {STRIP_WIDTH}]")
    return reads_geometry
