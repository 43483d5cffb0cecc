"""From what the OCR read to a plate number (pure logic), as plate readers do it: the painted text must
match its series' format (a regex per series); characters OCR commonly confuses are corrected where
the format says which kind belongs there (O→0 in the number, 0→O in a name); and where a list of the
fleet's numbers is known, a read within a small edit distance of exactly one of them is taken as that
one, at a lower confidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Look-alikes: the OCR's letter where a digit belongs, and its digit where a letter belongs.
LETTER_TO_DIGIT = str.maketrans(
    {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8"}
)
DIGIT_TO_LETTER = str.maketrans({"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B"})
# Confidence kept when a read was corrected to a fleet number (per edit).
FLEET_MATCH_PENALTY = 0.8
MAX_EDIT_DISTANCE = 1


@dataclass(frozen=True)
class PlateReading:
    """A plate the rules accept."""

    plate: str
    series: str
    confidence: float
    raw: str


class PlateRules:
    """Formats per series and, optionally, the fleet's known numbers."""

    def __init__(self, formats: Mapping[str, str], fleet: Iterable[str] = ()) -> None:
        self.formats = {series: re.compile(pattern) for series, pattern in formats.items()}
        self.fleet = frozenset(fleet)

    def interpret(self, reads: Iterable[tuple[str, float]]) -> PlateReading | None:
        """The best plate among (text, confidence) reads, or None when none qualifies."""
        best: PlateReading | None = None
        for text, confidence in reads:
            reading = self._one(text, confidence)
            if reading is not None and (best is None or reading.confidence > best.confidence):
                best = reading
        return best

    def _one(self, raw: str, confidence: float) -> PlateReading | None:
        text = re.sub(r"[^A-Z0-9-]", "", raw.upper())
        for candidate in _variants(text):
            series = self._series_of(candidate)
            if series is not None and (not self.fleet or candidate in self.fleet):
                return PlateReading(candidate, series, confidence, raw)
        if self.fleet and "-" in text:
            near = [
                (plate, edit_distance(text, plate))
                for plate in self.fleet
                if abs(len(plate) - len(text)) <= MAX_EDIT_DISTANCE  # cheap test first: most reads are far
            ]
            close = [(plate, d) for plate, d in near if d <= MAX_EDIT_DISTANCE]
            if len(close) == 1:  # ambiguous corrections are not made
                plate, distance = close[0]
                series = self._series_of(plate)
                if series is not None:
                    return PlateReading(plate, series, confidence * FLEET_MATCH_PENALTY**distance, raw)
        return None

    def _series_of(self, plate: str) -> str | None:
        for series, pattern in self.formats.items():
            if pattern.fullmatch(plate):
                return series
        return None


def _variants(text: str) -> list[str]:
    """The text as read, then with look-alikes corrected: digits after the last dash, letters before
    it only where the read has no digit that the series name could hold (2TE116 has digits)."""
    if "-" not in text:
        return [text]
    name, _, number = text.rpartition("-")
    fixed_number = number.translate(LETTER_TO_DIGIT)
    return list(
        dict.fromkeys([text, f"{name}-{fixed_number}", f"{name.translate(DIGIT_TO_LETTER)}-{fixed_number}"])
    )


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
