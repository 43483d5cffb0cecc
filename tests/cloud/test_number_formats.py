"""Number formats with check digits, and text boxes joined into candidate numbers: pure logic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.config import PlateFormat, load_cloud_config
from cloud.recognition.check_digits import CheckDigit, is_valid, luhn_digit, written
from cloud.recognition.line_assembly import JOIN_PENALTY, TextRead, candidates
from cloud.recognition.plate_rules import LOOK_ALIKE_PENALTY, PlateRules
from shared.errors import ConfigError
from tests.conftest import EXAMPLE_LAYOUT

UIC = PlateFormat(pattern=r"\d{12}", check_digit=CheckDigit.UIC)
WAGON = PlateFormat(pattern=r"\d{8}", check_digit=CheckDigit.WAGON_1520)
FORMATS = {"UIC": UIC, "wagon": WAGON, "TEM2": r"TEM2-\d{4}"}

# Published European vehicle numbers: the UIC wagon-number examples (21 81 2471 217-3, 51 80 0843 001-0),
# a Russian sleeping car's RIC number (52 20 70-80 434-2), a PKP coach (50 51 26-18 001-5) and a DB
# vehicle long used as a test case of check-digit calculators (21 80 155 9 084-5).
REAL_UIC = [
    "21 81 2471 217-3",
    "51 80 0843 001-0",
    "52 20 70-80 434-2",
    "50 51 26-18 001-5",
    "21 80 155 9 084-5",
]


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


@pytest.mark.parametrize("number", REAL_UIC)
def test_real_uic_numbers_pass_their_check_and_every_wrong_check_digit_fails(number: str) -> None:
    digits = _digits(number)
    assert is_valid(digits, CheckDigit.UIC)
    for wrong in set("0123456789") - {digits[-1]}:
        assert not is_valid(digits[:-1] + wrong, CheckDigit.UIC)


@pytest.mark.parametrize("number", REAL_UIC)
def test_a_single_misread_digit_or_a_swap_of_neighbours_fails_the_uic_check(number: str) -> None:
    digits = _digits(number)
    for i in range(11):
        for other in set("0123456789") - {digits[i]}:
            assert not is_valid(digits[:i] + other + digits[i + 1 :], CheckDigit.UIC), (i, other)
    for i in range(10):
        if {digits[i], digits[i + 1]} not in ({"0", "9"}, {digits[i]}):  # Luhn's one blind spot: 09/90
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert not is_valid(swapped, CheckDigit.UIC), i


def test_the_1520_wagon_rule_weights_the_first_seven_digits_2_1_2_1_2_1_2_modulo_10() -> None:
    # The rule as the handbook "Eight-digit numbering of 1520 mm freight wagons" states it, worked by
    # hand: 2800531 → 4+8+0+0+(10 → 1+0)+3+2 = 18 → check 2; a sum already a multiple of ten → 0.
    assert luhn_digit("2800531") == 2
    assert is_valid("28005312", CheckDigit.WAGON_1520)
    assert not is_valid("28005313", CheckDigit.WAGON_1520)
    assert luhn_digit("1800000") == 0
    assert luhn_digit("5000000") == 9  # 5 x 2 = 10 counts as 1 + 0
    assert not is_valid("2800531", CheckDigit.WAGON_1520)  # seven digits: no number
    assert not is_valid("318553760519", CheckDigit.WAGON_1520)  # a valid UIC number is no wagon number


def test_a_uic_number_is_written_in_its_groups() -> None:
    assert written("318553760519", CheckDigit.UIC) == "31 85 5376 051-9"
    assert written("28005312", CheckDigit.WAGON_1520) == "28005312"


@pytest.mark.parametrize(
    ("read", "plate"),
    [
        ("318553760519", "31 85 5376 051-9"),
        ("31855376051-9", "31 85 5376 051-9"),
        ("28005312", "28005312"),
    ],
)
def test_numbers_with_a_right_check_digit_are_accepted_in_their_written_form(read: str, plate: str) -> None:
    reading = PlateRules(FORMATS).interpret([(read, 0.9)])
    assert reading is not None and reading.plate == plate and reading.confidence == 0.9
    assert reading.series == ("UIC" if len(plate) > 8 else "wagon") and reading.raw == read


def test_with_a_fleet_list_a_check_digit_number_must_be_one_of_the_fleet() -> None:
    rules = PlateRules(FORMATS, fleet=["31 85 5376 051-9"])
    reading = rules.interpret([("318553760519", 0.9)])
    assert reading is not None and reading.plate == "31 85 5376 051-9"
    assert rules.interpret([("21812471217-3", 0.9)]) is None  # a right check digit, but not ours


@pytest.mark.parametrize("read", ["318553760518", "28005313", "3185537605190", "2800531"])
def test_a_read_failing_its_check_digit_is_no_number(read: str) -> None:
    assert PlateRules(FORMATS).interpret([(read, 0.99)]) is None


def test_look_alike_letters_are_read_as_the_digits_that_make_the_check_right() -> None:
    # "O" for 0 and "I" for 1: one way makes the check digit right, at a lower confidence per letter.
    reading = PlateRules(FORMATS).interpret([("3I855376O51-9", 0.9)])
    assert reading is not None and reading.plate == "31 85 5376 051-9"
    assert reading.confidence == pytest.approx(0.9 * LOOK_ALIKE_PENALTY**2)
    reading = PlateRules(FORMATS).interpret([("28OO53I2", 0.9)])
    assert reading is not None and reading.plate == "28005312"
    # "T" may be a 7 or a 1 where the 5 was painted: neither makes the check right, so no number.
    assert PlateRules(FORMATS).interpret([("2800T312", 0.9)]) is None


def test_a_look_alike_fix_that_two_numbers_could_make_is_refused() -> None:
    # Two T's (each a 7 or a 1): 27015312 and 21075312 both have a right check digit.
    assert PlateRules(FORMATS).interpret([("2T0T5312", 0.9)]) is None
    # Letters no digit looks like, or too many look-alikes, are no number either.
    assert PlateRules(FORMATS).interpret([("2800X312", 0.9)]) is None
    assert PlateRules(FORMATS).interpret([("2BOO53I2", 0.9)]) is None  # 4 look-alikes: 28005312 if read so


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        (
            "wagon: {pattern: '\\d{8}(', check_digit: wagon1520}",
            "recognition.plate_formats.wagon.format.pattern: not a regular expression",
        ),
        ("EVN: {pattern: '\\d{12}', check_digit: luhn}", "recognition.plate_formats.EVN.format.check_digit"),
        ("TEM2: 'TEM2-(\\d{4}'", "recognition.plate_formats.TEM2.regex: not a regular expression"),
    ],
)
def test_invalid_formats_fail_at_start_naming_the_key(tmp_path: Path, setting: str, error: str) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(f"layout: {EXAMPLE_LAYOUT}\nrecognition:\n  plate_formats:\n    {setting}\n")
    with pytest.raises(ConfigError) as caught:
        load_cloud_config(config)
    assert error in str(caught.value)


def _read(text: str, x: float, y: float, w: float, h: float, confidence: float = 0.95) -> TextRead:
    return TextRead(text, confidence, ((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def test_two_groups_on_one_line_are_joined_into_the_number() -> None:
    reads = [_read("2800", 100, 50, 80, 24), _read("5312", 215, 51, 80, 24)]
    texts = dict(candidates(reads))
    assert "28005312" in texts and "2800-5312" in texts
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "28005312"
    assert PlateRules(FORMATS).interpret((r.text, r.confidence) for r in reads) is None  # apart: nothing


def test_a_join_the_check_digit_refuses_is_no_number() -> None:
    reads = [_read("2800", 100, 50, 80, 24), _read("5313", 215, 51, 80, 24)]
    assert "28005313" in dict(candidates(reads))
    assert PlateRules(FORMATS).interpret(candidates(reads)) is None


def test_a_series_and_its_number_apart_are_joined_with_a_dash() -> None:
    reads = [_read("TEM2", 100, 50, 80, 24), _read("0457", 210, 50, 80, 24)]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "TEM2-0457"


def _slanted(text: str, start: tuple[float, float], length: float, height: float, degrees: float) -> TextRead:
    angle = np.radians(degrees)
    along, across = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
    origin = np.array(start)
    corners = [
        origin,
        origin + length * along,
        origin + length * along + height * across,
        origin + height * across,
    ]
    return TextRead(text, 0.95, tuple((float(x), float(y)) for x, y in corners))


def test_groups_on_a_line_slanted_by_perspective_are_joined_along_it() -> None:
    # A plate seen at an angle: the second group's centre is well below the first's, but on its line.
    first = _slanted("TEM2", (100, 100), 60, 14, -25)
    second = _slanted(
        "0457", (100 + 75 * np.cos(np.radians(-25)), 100 + 75 * np.sin(np.radians(-25))), 60, 14, -25
    )
    reading = PlateRules(FORMATS).interpret(candidates([first, second]))
    assert reading is not None and reading.plate == "TEM2-0457"
    crossing = _slanted("0457", (175, 100 - 4), 60, 14, 20)  # as far, but on a line crossing the first's
    assert PlateRules(FORMATS).interpret(candidates([first, crossing])) is None


def test_a_gap_the_recogniser_read_as_a_space_inside_one_box_is_a_gap_like_between_boxes() -> None:
    reading = PlateRules(FORMATS).interpret(candidates([_read("TEM2 0457", 100, 50, 200, 24)]))
    assert reading is not None and reading.plate == "TEM2-0457"
    reading = PlateRules(FORMATS).interpret(candidates([_read("2800 5312", 100, 50, 200, 24)]))
    assert reading is not None and reading.plate == "28005312"


@pytest.mark.parametrize(
    ("second", "why"),
    [
        (_read("5312", 215, 90, 80, 24), "on another line"),
        (_read("5312", 420, 50, 80, 24), "too far along the line"),
        (_read("5312", 215, 40, 80, 48), "twice as tall"),
        (_read("5312", 150, 50, 80, 24), "overlapping: the same text read twice"),
    ],
)
def test_boxes_that_are_not_one_line_are_not_joined(second: TextRead, why: str) -> None:
    texts = dict(candidates([_read("2800", 100, 50, 80, 24), second]))
    assert "28005312" not in texts, why


def test_a_uic_number_over_three_lines_is_read_across_them() -> None:
    # As painted on a wagon: "31 RIV" / "85 CH-SBBC" / "5376 051-9", one box catching a neighbour's
    # letter ("31R"): the candidate takes the first groups of each line.
    reads = [
        _read("31R", 20, 10, 70, 60),
        _read("RIV", 200, 12, 150, 60),
        _read("85", 20, 90, 60, 60),
        _read("CH-SBBC", 190, 92, 400, 60),
        _read("5376051-9", 20, 170, 600, 60),
    ]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "31 85 5376 051-9"
    lines_apart = [*reads[:4], _read("5376051-9", 20, 330, 600, 60)]  # the last line far below
    assert PlateRules(FORMATS).interpret(candidates(lines_apart)) is None


def test_a_number_over_two_lines_is_read_down_them_without_a_gap() -> None:
    # A passenger coach of the 1520 mm railways: "017" (coach, railway) over "12345", one 8-digit number.
    reads = [_read("017", 20, 10, 90, 40), _read("12345", 20, 60, 150, 40)]
    reading = PlateRules({"coach": r"0\d{7}"}).interpret(candidates(reads))
    assert reading is not None and reading.plate == "01712345"


def test_of_equal_reads_the_one_with_fewer_joins_wins_and_tokens_drop_a_caught_neighbour() -> None:
    found = dict(candidates([_read("TEM2-0457X", 100, 50, 200, 24, 0.9)]))
    assert found["TEM2-0457"] == pytest.approx(0.9)  # one box: no join penalty
    joined = dict(candidates([_read("TEM2", 100, 50, 80, 24, 0.9), _read("0457", 210, 50, 80, 24, 0.9)]))
    assert joined["TEM2-0457"] < 0.9


def test_a_number_in_four_groups_along_one_line_is_joined_across_every_gap() -> None:
    reads = [
        _read(t, x, 50, w, 24)
        for t, x, w in (("31", 0, 40), ("85", 70, 40), ("5376", 140, 80), ("051-9", 250, 100))
    ]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "31 85 5376 051-9"


@pytest.mark.parametrize(("gap", "joined"), [(3, True), (-5, True), (-12, False)])
def test_boxes_that_touch_or_overlap_a_little_are_joined_and_ones_that_overlap_much_are_not(
    gap: float, joined: bool
) -> None:
    reads = [_read("2800", 100, 50, 80, 24), _read("5312", 180 + gap, 50, 80, 24)]
    assert ("28005312" in dict(candidates(reads))) is joined


def _corners_from(read: TextRead, first: int, backwards: bool) -> TextRead:
    corners = list(read.box[first:] + read.box[:first])
    return TextRead(read.text, read.confidence, tuple(reversed(corners)) if backwards else tuple(corners))


@pytest.mark.parametrize(("first", "backwards"), [(2, False), (1, True), (3, False), (0, True)])
def test_a_box_whose_corners_start_anywhere_and_run_either_way_reads_left_to_right(
    first: int, backwards: bool
) -> None:
    # The detector's corners may start at any corner, along a short side or a long one.
    left = _corners_from(_read("TEM2", 100, 50, 80, 24), first, backwards)
    right = _corners_from(_read("0457", 210, 50, 80, 24), first, backwards)
    reading = PlateRules(FORMATS).interpret(candidates([left, right]))
    assert reading is not None and reading.plate == "TEM2-0457"


def test_a_line_joins_at_most_five_boxes() -> None:
    reads = [_read(f"{d}{d}", 100 + 60 * i, 50, 40, 24) for i, d in enumerate("123456")]
    texts = dict(candidates(reads))
    assert "1122334455" in texts and "2233445566" in texts
    assert "112233445566" not in texts


def test_each_candidate_is_listed_once_at_its_best_confidence_most_confident_first() -> None:
    reads = [
        _read("TEM2-0457", 100, 50, 200, 24, 0.99),  # the whole number in one box, surer
        _read("TEM2", 100, 150, 80, 24, 0.97),  # and elsewhere in two boxes
        _read("0457", 210, 150, 80, 24, 0.96),
    ]
    found = candidates(reads)
    texts = [text for text, _ in found]
    assert texts.count("TEM2-0457") == 1
    assert dict(found)["TEM2-0457"] == pytest.approx(0.99)
    assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)


@pytest.mark.parametrize(
    ("third_x", "third_y", "stacked"),
    [(210, 130, True), (190, 110, True), (200, 104, True), (200, 95, False), (320, 130, False)],
)
def test_lines_stack_when_one_starts_just_below_the_other_and_at_its_left_edge(
    third_x: float, third_y: float, stacked: bool
) -> None:
    # "31" / "85" / "5376051-9" lines 40 px tall: a little apart, touching or overlapping a little,
    # indented a little, stack; overlapping by more than a fifth of a line or indented 3 heights do not.
    reads = [
        _read("31", 200, 10, 60, 40),
        _read("85", 200, 70, 60, 40),
        _read("5376051-9", third_x, third_y, 400, 40),
    ]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert (reading is not None and reading.plate == "31 85 5376 051-9") is stacked


def test_a_stack_is_found_below_another_line_and_its_confidence_is_its_least_sure_line() -> None:
    reads = [
        _read("RIV", 20, 10, 90, 40, 0.99),  # a marking above the number, left-aligned with it
        _read("31", 20, 60, 60, 40, 0.98),
        _read("85", 20, 110, 60, 40, 0.97),
        _read("5376", 20, 160, 160, 40, 0.95),  # the last line in two boxes, the second least sure
        _read("051-9", 220, 160, 200, 40, 0.85),
    ]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "31 85 5376 051-9"
    assert reading.confidence == pytest.approx(0.85 * JOIN_PENALTY**3)


def test_a_series_painted_above_its_number_is_joined_with_a_dash() -> None:
    reads = [_read("TEM2", 20, 10, 80, 30), _read("0457", 20, 45, 80, 30)]
    reading = PlateRules(FORMATS).interpret(candidates(reads))
    assert reading is not None and reading.plate == "TEM2-0457"


def test_a_single_token_is_a_candidate() -> None:
    assert "001" in dict(candidates([_read("001", 10, 10, 60, 24)]))


def test_a_cameras_clock_is_never_a_check_digit_number() -> None:
    # A date's digits pass a check digit one time in ten: 20260303 has a right 1520 mm one, and
    # 202603030000 (midnight) a right UIC one. So dashes must stand where the number has them, and a
    # candidate never starts or ends inside a run of digits and dashes.
    for clock in ("T1-C2 2026-03-03 00:00:15", "2026-03-03", "2026-03-03 0000"):
        found = candidates([_read(clock, 10, 10, 300, 14)])
        assert "03-03" not in dict(found) and "0303" not in dict(found)
        assert PlateRules(FORMATS).interpret(found) is None, clock
    assert PlateRules(FORMATS).interpret([("20260303", 0.9)]) is not None  # the digits alone would pass
    assert PlateRules(FORMATS).interpret([("202603030000", 0.9)]) is not None


def test_a_uic_numbers_only_dash_stands_before_its_check_digit() -> None:
    rules = PlateRules(FORMATS)
    assert rules.interpret([("31855376051-9", 0.9)]) is not None
    assert rules.interpret([("3185-5376051-9", 0.9)]) is None
    assert rules.interpret([("318553760-519", 0.9)]) is None
    assert rules.interpret([("2800-5312", 0.9)]) is None  # a wagon number has no dash
