"""The recognition benchmark's real section: photographs of real painted vehicle numbers that nobody
here made, read from where the team keeps them (never copied into the repository, never trained on).

The folder holds `manifest.json`: a list of {"file", "number", ...}. Each photo is read whole, as the
cloud reads a thumbnail (JPEG-free: the photo's own pixels). The rules get the formats of every number
in the set, as a depot configures its fleet's formats (a 12-digit number with a right UIC check digit
is read with the UIC rule, an 8-digit one with a right 1520 mm check digit with that rule, any other
by its shape: digit and letter runs and dashes), never the numbers themselves: no fleet list.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cloud.config import PlateFormat
from cloud.recognition.check_digits import CheckDigit, is_valid
from cloud.recognition.number_reader import NumberReader
from cloud.recognition.plate_ocr import PlateReader, upright

DEFAULT_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "real" / "numbers"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RealRead:
    """One photo: the number painted on it and what the reader made of it."""

    file: str
    number: str
    read: str | None
    ms: float

    @property
    def exact(self) -> bool:
        """Whether the read is the painted number (spaces and dashes aside)."""
        return self.read is not None and compact(self.read) == compact(self.number)


def compact(number: str) -> str:
    """A number without its spaces and dashes, upper case: how two spellings are compared."""
    return re.sub(r"[^A-Z0-9]", "", number.upper())


def manifest(folder: Path) -> list[tuple[Path, str]]:
    """(photo, number) for every entry of the folder's manifest."""
    entries = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return [(folder / entry["file"], str(entry["number"])) for entry in entries]


def fleet_formats(numbers: list[str]) -> dict[str, str | PlateFormat]:
    """The formats of the numbers, as their fleets would configure them (see the module's doc)."""
    formats: dict[str, str | PlateFormat] = {}
    for number in numbers:
        digits = compact(number)
        if len(digits) == 12 and is_valid(digits, CheckDigit.UIC):
            formats["UIC"] = PlateFormat(pattern=r"\d{12}", check_digit=CheckDigit.UIC)
        elif len(digits) == 8 and is_valid(digits, CheckDigit.WAGON_1520):
            formats["wagon-1520"] = PlateFormat(pattern=r"\d{8}", check_digit=CheckDigit.WAGON_1520)
        else:
            shape = _shape(number)
            formats[f"shape {shape}"] = shape
    return formats


def _shape(number: str) -> str:
    r"""A regex of a number's shape: "001" → \d{3}, "TEM2-1234" → [A-Z]{3}\d-\d{4}."""
    parts = []
    for run in re.findall(r"[0-9]+|[A-Z]+|-", number.upper()):
        if run == "-":
            parts.append("-")
        else:
            kind = r"\d" if run.isdigit() else "[A-Z]"
            parts.append(kind + (f"{{{len(run)}}}" if len(run) > 1 else ""))
    return "".join(parts)


def measure(reader: NumberReader, photos: list[tuple[Path, str]]) -> list[RealRead]:
    """Every photo read, with the time it took."""
    out = []
    for path, number in photos:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{path}: not a readable picture (the manifest names it)")
        started = time.perf_counter()
        reading, _ = reader.read(image)
        ms = 1000.0 * (time.perf_counter() - started)
        out.append(RealRead(path.name, number, reading.plate if reading else None, ms))
    return out


def crop_agreement(base: PlateReader, other: PlateReader, photos: list[tuple[Path, str]]) -> tuple[int, int]:
    """How many of the text boxes `base` finds in the photos (first and closer look) `other`'s
    recogniser reads the same, of how many: the two recognisers compared on the same real crops."""
    same = total = 0
    for path, _ in photos:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        first = base.look(image)
        reads = first.reads + base.look_closer(image, first)
        crops = [upright(image, np.asarray(r.box, np.float32)) for r in reads]
        for read, (text, _confidence) in zip(reads, other.recognise(crops), strict=True):
            same += read.text == text
            total += 1
    return same, total
