"""Check digits of railway vehicle numbers (pure logic).

Both rules are the Luhn scheme: the body's digits are weighted 2, 1, 2, 1, ... from the right, the
digits of the products summed, and the check digit is what brings the sum to a multiple of ten.
- `uic`: the 12-digit UIC / European Vehicle Number (UIC leaflet 438, OTIF/TSI vehicle marking), its
  12th digit the check of the first 11, painted "31 85 5376 051-9".
- `wagon1520`: the 8-digit freight wagon number of the 1520 mm railways ("Восьмизначная система
  нумерации грузовых вагонов колеи 1520 мм": weights 2, 1, 2, 1, 2, 1, 2 on the first seven digits,
  modulus 10), its 8th digit the check.
"""

from __future__ import annotations

from enum import StrEnum


class CheckDigit(StrEnum):
    """A number's check-digit rule."""

    UIC = "uic"
    WAGON_1520 = "wagon1520"


LENGTHS = {CheckDigit.UIC: 12, CheckDigit.WAGON_1520: 8}


def luhn_digit(body: str) -> int:
    """The digit that completes `body` (digits only) under the Luhn scheme."""
    total = 0
    for position, char in enumerate(reversed(body)):
        product = int(char) * (2 if position % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def is_valid(digits: str, rule: CheckDigit) -> bool:
    """Whether `digits` (digits only) has the rule's length and a right check digit."""
    if len(digits) != LENGTHS[rule] or not digits.isdigit():
        return False
    return luhn_digit(digits[:-1]) == int(digits[-1])


def written(digits: str, rule: CheckDigit) -> str:
    """The number as it is written: "31 85 5376 051-9" for a UIC number, the 8 digits for a wagon."""
    if rule is CheckDigit.UIC:
        return f"{digits[:2]} {digits[2:4]} {digits[4:8]} {digits[8:11]}-{digits[11]}"
    return digits
