"""The recognition benchmark's real section: which formats it gives the rules, and what counts as read."""

from __future__ import annotations

from pathlib import Path

from bench.real_numbers import RealRead, fleet_formats, manifest
from cloud.config import PlateFormat
from cloud.recognition.check_digits import CheckDigit
from cloud.recognition.plate_rules import PlateRules


def test_the_rules_get_each_numbers_format_never_the_numbers() -> None:
    formats = fleet_formats(["001", "31 85 5376 051-9", "28005312", "TEM2-1234", "409"])
    assert formats["UIC"] == PlateFormat(pattern=r"\d{12}", check_digit=CheckDigit.UIC)
    assert formats["wagon-1520"] == PlateFormat(pattern=r"\d{8}", check_digit=CheckDigit.WAGON_1520)
    assert {k: v for k, v in formats.items() if isinstance(v, str)} == {
        r"shape \d{3}": r"\d{3}",
        r"shape [A-Z]{3}\d-\d{4}": r"[A-Z]{3}\d-\d{4}",
    }
    rules = PlateRules(formats)
    for read in ("123", "TEM2-9999", "21 81 2471 217-3"):  # any number of those shapes, not only the set's
        assert rules.interpret([(read, 0.9)]) is not None, read
    # 12 digits with a wrong check digit: not a UIC number, so only its shape would be a format.
    assert "UIC" not in fleet_formats(["31 85 5376 051-8"])


def test_a_read_counts_when_it_is_the_painted_number_spaces_and_dashes_aside(tmp_path: Path) -> None:
    assert RealRead("a.jpg", "31 85 5376 051-9", "31 85 5376 051-9", 1.0).exact
    assert RealRead("a.jpg", "31 85 5376 051-9", "318553760519", 1.0).exact
    assert not RealRead("a.jpg", "001", "1001", 1.0).exact
    assert not RealRead("a.jpg", "001", None, 1.0).exact
    (tmp_path / "manifest.json").write_text('[{"file": "x.png", "number": "001", "note": "cab"}]')
    assert manifest(tmp_path) == [(tmp_path / "x.png", "001")]
