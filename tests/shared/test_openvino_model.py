"""The one OpenVINO loader, on the shipped LPE IR: the runtime's error, one line naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import openvino as ov
import pytest

from shared.errors import DepotwatchError
from shared.openvino_model import compile_ir
from tests.conftest import REPO

XML = REPO / "ir_models" / "lpe" / "1.0.0" / "lpe_int8.xml"


class ToyModelError(DepotwatchError):
    """The error a runtime asks the loader to raise."""


def _load(xml: Path = XML, **options: object) -> ov.CompiledModel:
    return compile_ir(xml, error=ToyModelError, what="toy model", **options)  # type: ignore[arg-type]


def _one_line_error(match: str, xml: Path = XML, **options: object) -> str:
    with pytest.raises(ToyModelError, match=match) as caught:
        _load(xml, **options)
    message = str(caught.value)
    assert "\n" not in message and "Exception from" not in message
    return message


def test_shape_threads_and_hook_reach_the_compiled_model() -> None:
    prepared: list[ov.Model] = []

    def preprocess(model: ov.Model) -> ov.Model:
        prepared.append(model)
        return model

    compiled = _load(shape=[2, 64, 256, 3], threads=1, inference_precision="f32", preprocess=preprocess)
    assert prepared
    assert compiled.input(0).get_partial_shape() == ov.PartialShape([2, 64, 256, 3])
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert compiled.get_property("ENABLE_CPU_PINNING") is False
    assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"


def test_a_batch_size_reaches_every_input_of_a_model_of_several() -> None:
    several = REPO / "ir_models" / "lpe" / "2.0.0" / "lpe_fp32.xml"
    compiled = _load(several, batch=3)
    assert [tuple(port.get_partial_shape().to_shape()) for port in compiled.inputs] == [
        (3, 64, 256, 3),
        (3, 64, 256),
        (3, 1),
    ]


def test_a_missing_bin_names_the_file(tmp_path: Path) -> None:
    shutil.copy(XML, tmp_path / XML.name)
    message = _one_line_error("toy model file .*lpe_int8.bin does not exist", tmp_path / XML.name)
    assert str(tmp_path) in message


def test_a_broken_ir_is_a_read_error(tmp_path: Path) -> None:
    (tmp_path / "toy.xml").write_text("<net>not a model")
    (tmp_path / "toy.bin").write_bytes(b"")
    _one_line_error("cannot read toy model .*toy.xml: Unable to read the model", tmp_path / "toy.xml")


def test_an_impossible_shape_is_a_reshape_error() -> None:
    _one_line_error(r"cannot reshape toy model .*\[1, 2, 3\]", shape=[1, 2, 3])


def test_an_unknown_device_lists_the_available_ones() -> None:
    _one_line_error(
        "cannot compile .* on 'NPU9': .*not registered.*; choose one of the devices .*CPU", device="NPU9"
    )


def test_the_signature_check_raises_its_own_error() -> None:
    def check(model: ov.Model) -> None:
        raise ToyModelError(f"expected another model than {model.friendly_name}")

    _one_line_error("expected another model", check=check)


def test_a_failing_preprocessing_hook_is_mapped() -> None:
    def preprocess(model: ov.Model) -> ov.Model:
        raise RuntimeError("Exception from src/core/src/preprocess.cpp:1:\nlayout mismatch\n")

    assert _one_line_error("cannot add pre-processing to toy model", preprocess=preprocess).endswith(
        "layout mismatch"
    )
