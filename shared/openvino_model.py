"""The one loader of OpenVINO IR models: check the files, read, check, reshape, preprocess, compile.

Every runtime (the edge's LPE, the cloud's series classifier and plate reader) loads its IR here, so
OpenVINO's errors are turned into the runtime's own domain error in one place, each as one line that
names the file and what to do, and the compile settings mean the same everywhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openvino as ov

from shared.errors import DepotwatchError

# OpenVINO prefixes its messages with a line per C++ frame ("Exception from src/...cpp:84:"); the
# reason is in the lines that do not end with such a location.
_SOURCE_LOCATION = re.compile(r"\.(?:cpp|hpp|h):\d+:$")


@functools.cache
def _core() -> ov.Core:
    """One Core a process, as OpenVINO advises: each Core would load the device plugins again."""
    return ov.Core()


def compile_ir(
    xml: Path,
    *,
    error: type[DepotwatchError],
    what: str,
    device: str = "CPU",
    shape: Sequence[int] | None = None,
    batch: int | None = None,
    hint: str = "LATENCY",
    inference_precision: str | None = None,
    threads: int | None = None,
    check: Callable[[ov.Model], None] | None = None,
    preprocess: Callable[[ov.Model], ov.Model] | None = None,
) -> ov.CompiledModel:
    """The IR at `xml` (with its .bin beside it) compiled for `device`; raises `error` on any failure.

    `what` names the model in messages ("LPE model"). `shape` is the new shape of the model's input
    (-1 for a dynamic dimension), `None` to keep the IR's; `batch`, when given, the first dimension of
    every input instead (for models of several inputs). `hint` is OpenVINO's performance hint;
    `inference_precision`, when given, its inference precision hint (e.g. "f32", so a CPU with AMX does
    not pick bf16). `threads`, when given on the CPU, caps the threads this model may use and leaves
    them unpinned, since a capped model shares the cores with others. `check` sees the model as read
    (before reshaping) and raises `error` if the IR is not the one expected; `preprocess` returns the
    model with OpenVINO pre-processing added, compiled into it.
    """
    for path in (xml, xml.with_suffix(".bin")):
        if not path.is_file():
            raise error(f"{what} file {path} does not exist: point the model folder at an exported IR")
    core = _core()
    try:
        model = core.read_model(xml)
    except RuntimeError as exc:
        raise error(f"cannot read {what} {xml}: {_reason(exc)}; export the IR again") from exc
    if check is not None:
        check(model)
    if shape is not None:
        try:
            model.reshape({model.input(0): ov.PartialShape(list(shape))})
        except RuntimeError as exc:
            raise error(f"cannot reshape {what} {xml} to {list(shape)}: {_reason(exc)}") from exc
    if batch is not None:
        shapes = {
            port: ov.PartialShape([batch, *list(port.get_partial_shape())[1:]]) for port in model.inputs
        }
        try:
            model.reshape(shapes)
        except RuntimeError as exc:
            raise error(f"cannot set {what} {xml} to batches of {batch}: {_reason(exc)}") from exc
    if preprocess is not None:
        try:
            model = preprocess(model)
        except RuntimeError as exc:
            raise error(f"cannot add pre-processing to {what} {xml}: {_reason(exc)}") from exc
    config: dict[str, Any] = {"PERFORMANCE_HINT": hint}
    if inference_precision:
        config["INFERENCE_PRECISION_HINT"] = inference_precision
    if threads is not None and device == "CPU":
        config |= {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False}
    try:
        return core.compile_model(model, device, config)
    except RuntimeError as exc:
        available = ", ".join(core.available_devices)
        raise error(
            f"cannot compile {xml} on {device!r}: {_reason(exc)}; choose one of the devices {available}"
        ) from exc


def _reason(exc: RuntimeError) -> str:
    """The last line of OpenVINO's message that is not a C++ source location."""
    lines = [line.strip() for line in str(exc).splitlines()]
    reasons = [line for line in lines if line and not _SOURCE_LOCATION.search(line)]
    return reasons[-1] if reasons else type(exc).__name__
