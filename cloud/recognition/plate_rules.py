"""From what the OCR read to a plate number (pure logic), as plate readers do it: the painted text must
match one of the fleet's formats (a regex each, per series or kind of vehicle); characters OCR commonly
confuses are corrected where the format says which kind belongs there (O→0 in the number, 0→O in a
name); a format with a check digit (check_digits) takes only numbers whose check digit is right, and
tries the digit look-alikes of letters read inside the number until exactly one combination makes it
right; and where a list of the fleet's numbers is known, a read within a small edit distance of exactly
one of them is taken as that one, at a lower confidence.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cloud.recognition.check_digits import CheckDigit, is_valid, written

# Look-alikes: the OCR's letter where a digit belongs, and its digit where a letter belongs.
LETTER_TO_DIGIT = str.maketrans(
    {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8"}
)
DIGIT_TO_LETTER = str.maketrans({"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B"})
# The digits a letter read inside a check-digit number may stand for, most likely first.
DIGIT_LOOK_ALIKES = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "I": "1", "L": "1", "J": "1", "T": "71",
    "Z": "27", "S": "5", "B": "8", "G": "6", "A": "4",
}  # fmt: skip
# A read with more letters than this inside a check-digit number is not a number misread.
MAX_LOOK_ALIKES = 3
# Confidence kept when a read was corrected to a fleet number (per edit), or per letter read as a digit
# in a check-digit number.
FLEET_MATCH_PENALTY = 0.8
LOOK_ALIKE_PENALTY = 0.9
MAX_EDIT_DISTANCE = 1


class FormatSpec(Protocol):
    """A number format: a regex of the whole number and, optionally, its check-digit rule (matched
    against the digits alone, separators removed)."""

    @property
    def pattern(self) -> str:
        """Regex of the whole number, upper case."""
        ...

    @property
    def check_digit(self) -> CheckDigit | None:
        """The check-digit rule, if the number carries one."""
        ...


@dataclass(frozen=True)
class _Format:
    name: str
    pattern: re.Pattern[str]
    check: CheckDigit | None


@dataclass(frozen=True)
class PlateReading:
    """A plate the rules accept."""

    plate: str
    series: str
    confidence: float
    raw: str


class PlateRules:
    """Formats per series and, optionally, the fleet's known numbers."""

    def __init__(self, formats: Mapping[str, str | FormatSpec], fleet: Iterable[str] = ()) -> None:
        self.formats = [
            _Format(name, re.compile(spec), None)
            if isinstance(spec, str)
            else _Format(name, re.compile(spec.pattern), spec.check_digit)
            for name, spec in formats.items()
        ]
        self.fleet = frozenset(fleet)
        # Every fleet number under each of its one-character deletions (and itself): two texts one
        # edit apart share such a key, so a read is compared only with the few numbers near it, not
        # the whole fleet (a read yields dozens of candidates; a fleet has hundreds of numbers).
        self._near: dict[str, set[str]] = {}
        for plate in self.fleet:
            for key in _deletions(plate):
                self._near.setdefault(key, set()).add(plate)

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
        for fmt in self.formats:
            if fmt.check is not None and (reading := self._checked(fmt, fmt.check, text, confidence, raw)):
                return reading
        if self.fleet and "-" in text:
            nearby = {plate for key in _deletions(text) for plate in self._near.get(key, ())}
            near = [(plate, edit_distance(text, plate)) for plate in nearby]
            close = [(plate, d) for plate, d in near if d <= MAX_EDIT_DISTANCE]
            if len(close) == 1:  # ambiguous corrections are not made
                plate, distance = close[0]
                series = self._series_of(plate)
                if series is not None:
                    return PlateReading(plate, series, confidence * FLEET_MATCH_PENALTY**distance, raw)
        return None

    def _checked(
        self, fmt: _Format, rule: CheckDigit, text: str, confidence: float, raw: str
    ) -> PlateReading | None:
        """The read as a number of a check-digit format: its digits with letters read as the digits
        they look like, taken only where exactly one way makes the check digit right."""
        if not _dashes_fit(text, rule):
            return None
        compact = text.replace("-", "")
        letters = [i for i, char in enumerate(compact) if not char.isdigit()]
        if len(letters) > MAX_LOOK_ALIKES or any(compact[i] not in DIGIT_LOOK_ALIKES for i in letters):
            return None
        valid = set()
        for digits in itertools.product(*(DIGIT_LOOK_ALIKES[compact[i]] for i in letters)):
            chars = list(compact)
            for i, digit in zip(letters, digits, strict=True):
                chars[i] = digit
            number = "".join(chars)
            if fmt.pattern.fullmatch(number) and is_valid(number, rule):
                valid.add(number)
        if len(valid) != 1:  # none, or ambiguous: not a number
            return None
        plate = written(valid.pop(), rule)
        if self.fleet and plate not in self.fleet:
            return None
        return PlateReading(plate, fmt.name, confidence * LOOK_ALIKE_PENALTY ** len(letters), raw)

    def _series_of(self, plate: str) -> str | None:
        for fmt in self.formats:
            if fmt.check is None and fmt.pattern.fullmatch(plate):
                return fmt.name
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


def _dashes_fit(text: str, rule: CheckDigit) -> bool:
    """Whether the read's dashes stand where the number's written form has them: a UIC number's only
    dash before its check digit, none in a 1520 mm wagon number (a date, "2026-03-02", is no number)."""
    if rule is CheckDigit.UIC:
        return "-" not in text or (text.count("-") == 1 and text.index("-") == len(text) - 2)
    return "-" not in text


def _deletions(text: str) -> set[str]:
    """The text and each text one character shorter that it contains (MAX_EDIT_DISTANCE is 1)."""
    return {text, *(text[:i] + text[i + 1 :] for i in range(len(text)))}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
