"""Convert PaddleOCR's PP-OCRv4 text detection and recognition networks, as the `rapidocr-openvino`
1.4.4 wheel bundles them (ONNX, Apache-2.0), to OpenVINO IR in ir_models/plate/<version>/.

    python -m training.recognition.plate_convert            # fetches the wheel from PyPI with pip
    python -m training.recognition.plate_convert --wheel path/to/rapidocr_openvino-1.4.4-py3-none-any.whl
    python -m training.recognition.plate_convert --rec-precision fp32 --out data/plate/det-int8-rec-fp32

The wheel is never installed (it pins an old OpenVINO and the full OpenCV); only its model files and
character list are taken. The recogniser's weights are stored as FP16 (half the size; inference still
runs in f32). By default both networks are then quantised to INT8 with NNCF (post-training, calibrated
on simulator thumbnails of seeds 11-13, none of the benchmark's; the recogniser on the text lines that
the folder's detector, as just written, finds in them): 2.2x (detector) and 1.3x (recogniser) faster
with the same reads when 1.0.0 was made (`python -m bench.recognition`); per call on a 2-core AVX2 CPU
without VNNI, 1.3x and 1.6x. `--det-precision fp32` / `--rec-precision fp32` leave that network
converted but not quantised, to compare the two on other pictures; source.json records both
precisions. `--out` writes the folder elsewhere than the shipped 1.0.0. Quantising needs the `train`
extra (nncf).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import openvino as ov

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "ir_models" / "plate" / "1.0.0"
# What each network may be stored as: quantised by NNCF, or only converted (f32 inference).
PRECISIONS = ("int8", "fp32")
WHEEL = "rapidocr-openvino==1.4.4"
MEMBERS = {
    "det": "rapidocr_openvino/models/ch_PP-OCRv4_det_infer.onnx",
    "rec": "rapidocr_openvino/models/ch_PP-OCRv4_rec_infer.onnx",
    "keys": "rapidocr_openvino/ch_ppocr_rec/ppocr_keys_v1.txt",
}


def fetch_wheel(folder: Path) -> Path:
    """Download the pinned rapidocr-openvino wheel into `folder` (pip, no dependencies); returns its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", str(folder)],
        check=True,
    )
    return next(folder.glob("rapidocr_openvino-*.whl"))


def convert(
    wheel: Path, out: Path, *, det_precision: str = "int8", rec_precision: str = "int8"
) -> dict[str, str]:
    """Write det.xml/bin, rec.xml/bin, characters.json and source.json, each network quantised or not
    as its precision ("int8" or "fp32") says; returns the source files' SHA-256."""
    for precision in (det_precision, rec_precision):
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is none of {PRECISIONS}")
    out.mkdir(parents=True, exist_ok=True)
    digests = {}
    with zipfile.ZipFile(wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        for name, member in MEMBERS.items():
            path = Path(archive.extract(member, tmp))
            digests[member] = hashlib.sha256(path.read_bytes()).hexdigest()
            if name == "keys":
                # CTC index 0 is the blank; PaddleOCR appends a space after the dictionary.
                characters = [*path.read_text(encoding="utf-8").splitlines(), " "]
                (out / "characters.json").write_text(json.dumps(characters, ensure_ascii=False))
            else:
                ov.save_model(ov.convert_model(path), out / f"{name}.xml", compress_to_fp16=name == "rec")
    thumbs = calibration_thumbnails() if "int8" in (det_precision, rec_precision) else []
    # Written beside and moved over: OpenVINO maps the original files while it reads them.
    if det_precision == "int8":
        det = quantise_detector(ov.Core().read_model(out / "det.xml"), thumbs)
        _replace(det, out / "det.xml")
    if rec_precision == "int8":
        rec = quantise_recogniser(ov.Core().read_model(out / "rec.xml"), out, thumbs)
        _replace(rec, out / "rec.xml")
    source = {
        "wheel": WHEEL,
        "sha256": digests,
        "precision": {"det": det_precision, "rec": rec_precision},
    }
    (out / "source.json").write_text(json.dumps(source, indent=2))
    return digests


def _replace(model: ov.Model, xml: Path) -> None:
    tmp = xml.with_name(f"tmp-{xml.name}")
    ov.save_model(model, tmp)
    tmp.with_suffix(".bin").replace(xml.with_suffix(".bin"))
    tmp.replace(xml)


def calibration_thumbnails() -> list[Any]:
    """Thumbnails as the edge crops them (day, night, blur), of seeds no benchmark uses."""
    from shared.layout import load_facility
    from sim.scenario import Conditions, Scenario
    from training.recognition.thumbs import LAYOUT, generate

    facility = load_facility(LAYOUT)
    thumbs = []
    for seed, conditions in CALIBRATION:
        scenario = Scenario(seed=seed, conditions=Conditions.model_validate(conditions))
        times = [20000.0 + 3600.0 * k for k in range(3)]
        thumbs += generate(facility, scenario, times, f"calibration {seed}")
    return thumbs


def _normalised(image: Any) -> Any:
    """u8 HWC -> f32 NCHW in [-1, 1]: what the raw networks take (at run time OpenVINO does this)."""
    import numpy as np

    return np.asarray(image.astype(np.float32) / 127.5 - 1.0, np.float32).transpose(2, 0, 1)[None]


def quantise_detector(model: ov.Model, thumbs: list[Any]) -> ov.Model:
    """INT8 detector, calibrated on the canvases it sees at run time."""
    import nncf

    from cloud.recognition.plate_ocr import det_canvas

    samples = [_normalised(det_canvas(t.image)[0]) for t in thumbs]
    return nncf.quantize(
        model, nncf.Dataset(samples), subset_size=len(samples), preset=nncf.QuantizationPreset.MIXED
    )


def quantise_recogniser(model: ov.Model, out: Path, thumbs: list[Any]) -> ov.Model:
    """INT8 recogniser, calibrated on the text lines the detector in `out` (quantised unless asked
    otherwise) finds in the thumbnails."""
    import cv2
    import nncf
    import numpy as np

    from cloud.recognition.plate_ocr import REC_HEIGHT, REC_MAX_WIDTH, PlateReader, upright

    reader = PlateReader(out)
    samples = []
    for thumb in thumbs:
        for read in reader.read(thumb.image):
            line = upright(thumb.image, np.asarray(read.box, np.float32))
            width = min(
                REC_MAX_WIDTH, max(16, int(np.ceil(REC_HEIGHT * line.shape[1] / max(line.shape[0], 1))))
            )
            padded = np.full((REC_HEIGHT, REC_MAX_WIDTH, 3), 128, np.uint8)
            padded[:, :width] = cv2.resize(line, (width, REC_HEIGHT))
            samples.append(_normalised(padded))
    return nncf.quantize(
        model,
        nncf.Dataset(samples),
        subset_size=len(samples),
        preset=nncf.QuantizationPreset.MIXED,
        model_type=nncf.ModelType.TRANSFORMER,
    )


CALIBRATION: list[tuple[int, dict[str, object]]] = [
    (11, {}),
    (12, {"lighting": "night"}),
    (13, {"blur_sigma_px": (0.5, 1.5)}),
]


def main() -> None:
    """Convert the models of the given wheel (or of one downloaded from PyPI) into `--out`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wheel", type=Path, help="A downloaded rapidocr-openvino 1.4.4 wheel.")
    parser.add_argument("--out", type=Path, default=OUT, help="The model folder to write.")
    for name, network in (("det", "detector"), ("rec", "recogniser")):
        parser.add_argument(
            f"--{name}-precision",
            choices=PRECISIONS,
            default="int8",
            help=f"int8: the {network} quantised with NNCF; fp32: converted only.",
        )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        convert(wheel, args.out, det_precision=args.det_precision, rec_precision=args.rec_precision)


if __name__ == "__main__":
    main()
