"""Plate rules, identity voting and identities: pure logic."""

from __future__ import annotations

import json

import pytest

from cloud.identities import Identities
from cloud.recognition.plate_rules import FLEET_MATCH_PENALTY, PlateReading, PlateRules, edit_distance
from cloud.recognition.voting import SETTLE_WEIGHT, IdentityVotes, Verdict
from shared.messages import TrackSpan
from tests import factories

FORMATS = {"TE33A": r"TE33A-\d{4}", "2TE116": r"2TE116-\d{4}", "TEM2": r"TEM2-\d{3}"}


@pytest.mark.parametrize(
    ("read", "plate"),
    [
        ("TE33A-2251", "TE33A-2251"),
        ("te33a-2251 ", "TE33A-2251"),
        ("TE33A-22S1", "TE33A-2251"),  # S where a digit belongs is a 5
        ("TE33A-O251", "TE33A-0251"),
        ("2TE116-0347", "2TE116-0347"),
        ("TEM2-O47", "TEM2-047"),
    ],
)
def test_reads_that_fit_a_series_format_are_taken_with_look_alikes_fixed(read: str, plate: str) -> None:
    reading = PlateRules(FORMATS).interpret([(read, 0.9)])
    assert reading is not None and reading.plate == plate


@pytest.mark.parametrize("read", ["TE33A-22", "T1-C2 2026-03-02 16:00:00", "", "XYZ-1234", "TE33A"])
def test_partial_or_foreign_text_is_no_plate(read: str) -> None:
    assert PlateRules(FORMATS).interpret([(read, 0.99)]) is None


def test_the_fleet_list_corrects_one_edit_and_refuses_ambiguity() -> None:
    rules = PlateRules(FORMATS, fleet=["TE33A-2251", "TE33A-2368", "TE33A-2361"])
    near = rules.interpret([("TE33A-2252", 0.9)])
    assert near is not None and near.plate == "TE33A-2251" and near.confidence < 0.9
    assert rules.interpret([("TE33A-2365", 0.9)]) is None  # one edit from two fleet numbers
    assert rules.interpret([("TE33A-9999", 0.9)]) is None  # well-formed but not ours


def test_the_most_confident_qualifying_read_wins() -> None:
    reading = PlateRules(FORMATS).interpret([("0216:00:00", 0.99), ("TE33A-2251", 0.8), ("TE33A-2252", 0.7)])
    assert reading is not None and reading.plate == "TE33A-2251" and reading.series == "TE33A"


def test_edit_distance() -> None:
    assert edit_distance("TE33A-2251", "TE33A-2251") == 0
    assert edit_distance("TE33A-2251", "TE33A-2261") == 1
    assert edit_distance("TE33A-225", "TE33A-2251") == 1


def test_one_bad_read_does_not_rename_a_settled_locomotive() -> None:
    votes = IdentityVotes()
    verdicts = [votes.vote("plate", "TE33A-2251", 0.95) for _ in range(3)]
    assert [v.kind for v in verdicts if v] == ["identified"]
    conflict = votes.vote("plate", "TE33A-2261", 0.99)
    assert conflict is not None and conflict.kind == "conflict" and conflict.previous == "TE33A-2251"
    assert votes.vote("plate", "TE33A-2261", 0.99) is None  # told once
    assert votes.settled("plate")[0] == "TE33A-2251"


def test_a_first_wrong_read_is_outvoted_before_anything_settles() -> None:
    votes = IdentityVotes()
    assert votes.vote("plate", "TE33A-2261", 0.9) is None
    kinds = [v.kind for v in (votes.vote("plate", "TE33A-2251", 0.95) for _ in range(5)) if v]
    assert kinds == ["identified"] and votes.settled("plate")[0] == "TE33A-2251"


def test_an_overwhelming_majority_reidentifies_with_an_event() -> None:
    votes = IdentityVotes()
    votes.restore("series", "TE33A", SETTLE_WEIGHT)
    verdicts = [votes.vote("series", "2TE116", 0.9) for _ in range(6)]
    kinds = [v.kind for v in verdicts if v]
    assert kinds == ["conflict", "reidentified"] and votes.settled("series")[0] == "2TE116"


def test_empty_or_unknown_reads_do_not_vote() -> None:
    votes = IdentityVotes()
    assert votes.vote("series", None, 0.9) is None and votes.vote("series", "TEM2", 0.0) is None
    assert votes.settled("series") == (None, 0.0)


def test_a_reading_delivered_again_votes_once() -> None:
    identities = Identities()
    locos = [factories.loco("L00001", "T1", 12.0, 24.0)]
    reading = factories.recognition(span=TrackSpan(start_m=14.0, end_m=22.0))
    assert identities.observe(reading, locos) == "L00001"
    assert identities.observe(reading, locos) is None  # the same thumbnail's reading, redelivered
    identity = identities.get("L00001")
    assert identity is not None and identity.plate is None  # one confident read settles nothing
    assert identities.observe(factories.recognition(span=reading.span), locos) == "L00001"
    identity = identities.get("L00001")
    assert identity is not None and identity.plate == reading.plate  # two thumbnails do


# Weights are sums of binary fractions (0.75, 0.875, ...) where a boundary is hit exactly, so "at" is
# the threshold itself, not a float near it.


@pytest.mark.parametrize(
    ("wrong", "settles"),
    [(0.76, False), (0.75, True), (0.74, True)],
    ids=["share just below 70 %", "share at 70 %", "share just above 70 %"],
)
def test_a_value_settles_from_70_percent_of_the_weight(wrong: float, settles: bool) -> None:
    """A wrong first read of `wrong`, then two of 0.875 (1.75: past the weight needed): their share is
    1.75 / (1.75 + wrong), 69.7 %, exactly 70 % and 70.3 %."""
    votes = IdentityVotes()
    assert votes.vote("plate", "TE33A-2261", wrong) is None
    assert votes.vote("plate", "TE33A-2251", 0.875) is None
    verdict = votes.vote("plate", "TE33A-2251", 0.875)
    if settles:
        assert verdict == Verdict("identified", "plate", "TE33A-2251", None, 1.75 / (1.75 + wrong))
        value, share = votes.settled("plate")
        assert value == "TE33A-2251" and share == pytest.approx(1.75 / (1.75 + wrong))
    else:
        assert verdict is None and votes.settled("plate") == (None, 0.0)


@pytest.mark.parametrize(
    ("reads", "settles"),
    [((1.0,), False), ((0.75, 0.7499), False), ((0.75, 0.75), True), ((0.5, 0.5, 0.5), True)],
    ids=["one certain read", "two reads just short", "two reads of 0.75", "three of 0.5"],
)
def test_it_takes_two_confident_reads_to_settle(reads: tuple[float, ...], settles: bool) -> None:
    """SETTLE_WEIGHT 1.5: no single read (confidence at most 1) settles a value, two of 0.75 do."""
    votes = IdentityVotes()
    verdicts = [votes.vote("series", "TE33A", confidence) for confidence in reads]
    if settles:
        assert verdicts[:-1] == [None] * (len(reads) - 1)
        assert verdicts[-1] == Verdict("identified", "series", "TE33A", None, 1.0)
        assert votes.settled("series") == ("TE33A", 1.0)
    else:
        assert verdicts == [None] * len(reads) and votes.settled("series") == (None, 0.0)


@pytest.mark.parametrize(
    ("last", "overturns"),
    [(0.74, False), (0.75, True), (0.76, True)],
    ids=["just below 3x", "at 3x", "just above 3x"],
)
def test_a_settled_value_is_overturned_at_three_times_its_weight(last: float, overturns: bool) -> None:
    """Settled on 1.5 (two reads of 0.75); five reads of 0.75 for another value (3.75) and a sixth of
    `last`: 4.49, exactly 4.5 (3 x 1.5) and 4.51."""
    votes = IdentityVotes()
    votes.vote("plate", "TE33A-2251", 0.75)
    assert votes.vote("plate", "TE33A-2251", 0.75) is not None
    verdicts = [votes.vote("plate", "TE33A-2261", 0.75) for _ in range(5)]
    assert [v.kind if v else None for v in verdicts] == ["conflict", None, None, None, None]
    verdict = votes.vote("plate", "TE33A-2261", last)
    if overturns:
        assert verdict is not None and (verdict.kind, verdict.value, verdict.previous) == (
            "reidentified",
            "TE33A-2261",
            "TE33A-2251",
        )
        assert votes.settled("plate")[0] == "TE33A-2261"
    else:
        assert verdict is None and votes.settled("plate")[0] == "TE33A-2251"


def test_a_read_is_reported_with_its_series_confidence_and_raw_text() -> None:
    reading = PlateRules(FORMATS).interpret([(" te33a-22S1", 0.9)])
    assert reading == PlateReading("TE33A-2251", "TE33A", 0.9, " te33a-22S1")


def test_of_equally_confident_reads_the_first_wins() -> None:
    reading = PlateRules(FORMATS).interpret([("TE33A-2251", 0.8), ("2TE116-0347", 0.8)])
    assert reading is not None and reading.plate == "TE33A-2251"


def test_look_alikes_are_fixed_only_after_the_last_dash() -> None:
    """A series whose name has a dash and a look-alike letter in it (the D of DM): only the number, after
    the last dash, is read as digits."""
    rules = PlateRules({"TEM18-DM": r"TEM18-DM-\d{3}"})
    assert rules.interpret([("TEM18-DM-O47", 0.9)]) == PlateReading(
        "TEM18-DM-047", "TEM18-DM", 0.9, "TEM18-DM-O47"
    )


@pytest.mark.parametrize(
    ("read", "plate"),
    [("TE33A-2252", "TE33A-2251"), ("TE33A-225", "TE33A-2251"), ("TE33A-22511", "TE33A-2251")],
    ids=["one character wrong", "one character missing", "one character extra"],
)
def test_a_read_one_edit_from_one_fleet_number_is_taken_as_it_at_a_lower_confidence(
    read: str, plate: str
) -> None:
    rules = PlateRules(FORMATS, fleet=["TE33A-2251", "TE33A-2368", "2TE116-0347"])
    assert rules.interpret([(read, 0.9)]) == PlateReading(plate, "TE33A", 0.9 * FLEET_MATCH_PENALTY, read)


@pytest.mark.parametrize(
    "read", ["TE33A-22", "TE33A-225111", "TE33A-2222"], ids=["two short", "two extra", "two wrong"]
)
def test_a_read_two_edits_from_every_fleet_number_is_no_plate(read: str) -> None:
    assert PlateRules(FORMATS, fleet=["TE33A-2251"]).interpret([(read, 0.9)]) is None


def test_a_read_without_a_dash_is_not_corrected_to_a_fleet_number() -> None:
    """The dash is what tells a plate from the other text a camera sees (a clock, a sign)."""
    rules = PlateRules(FORMATS, fleet=["TE33A-2251"])
    assert rules.interpret([("TE33A2251", 0.9)]) is None
    assert rules.interpret([("TE33A-2251", 0.9)]) == PlateReading("TE33A-2251", "TE33A", 0.9, "TE33A-2251")


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("", "", 0),
        ("", "ABC", 3),
        ("ABC", "", 3),
        ("A", "B", 1),
        ("AB", "BA", 2),
        ("AB", "A", 1),
        ("A", "AB", 1),
        ("KITTEN", "SITTING", 3),
        ("FLAW", "LAWN", 2),
        ("TE33A-2251", "TE33A-251", 1),
        ("TE33A-2251", "2TE116-0347", 8),
    ],
)
def test_edit_distance_counts_insertions_deletions_and_substitutions(a: str, b: str, distance: int) -> None:
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_a_disagreeing_read_is_a_conflict_with_its_own_confidence() -> None:
    votes = IdentityVotes()
    votes.vote("plate", "TE33A-2251", 0.75)
    votes.vote("plate", "TE33A-2251", 0.75)
    assert votes.vote("plate", "TE33A-2261", 0.5) == Verdict(
        "conflict", "plate", "TE33A-2261", "TE33A-2251", 0.5
    )


def test_a_reidentification_reports_the_new_value_its_share_and_the_old_one() -> None:
    """Settled on 1.5; six reads of 0.75 for another (4.5, three times 1.5) overturn it with 4.5 / 6."""
    votes = IdentityVotes()
    votes.restore("series", "TE33A", SETTLE_WEIGHT)
    verdicts = [votes.vote("series", "2TE116", 0.75) for _ in range(6)]
    assert verdicts[-1] == Verdict("reidentified", "series", "2TE116", "TE33A", 0.75)
    assert votes.settled("series") == ("2TE116", 0.75)


def test_reads_without_a_value_or_with_no_confidence_count_for_nothing() -> None:
    votes = IdentityVotes()
    assert [votes.vote("series", None, 0.9) for _ in range(3)] == [None] * 3  # 2.7 for "no value"
    assert votes.vote("series", "TEM2", 0.0) is None
    assert votes.to_json()["series"]["weights"] == {}
    votes.restore("series", "TE33A", SETTLE_WEIGHT)
    assert votes.vote("series", "TEM2", 0.0) is None  # no conflict either
    assert votes.vote("series", "TEM2", -0.5) is None
    assert votes.to_json()["series"] == {
        "weights": {"TE33A": SETTLE_WEIGHT},
        "settled": "TE33A",
        "conflicts_told": [],
    }


def test_the_weight_is_that_of_the_settled_value() -> None:
    votes = IdentityVotes()
    votes.vote("plate", "TE33A-2251", 0.875)
    assert votes.weight("plate") == 0.0 and votes.settled("plate") == (None, 0.0)
    votes.vote("plate", "TE33A-2251", 0.875)
    votes.vote("plate", "TE33A-2261", 0.25)
    assert votes.weight("plate") == 1.75 and votes.weight("series") == 0.0


def test_asking_before_anything_settled_leaves_the_tally_as_it_was() -> None:
    votes = IdentityVotes()
    votes.vote("plate", "TE33A-2251", 0.5)
    saved = votes.to_json()
    assert votes.settled("plate") == (None, 0.0) and votes.weight("plate") == 0.0
    assert votes.settled("series") == (None, 0.0) and votes.weight("series") == 0.0
    assert (
        votes.to_json()
        == saved
        == {
            "series": {"weights": {}, "settled": None, "conflicts_told": []},
            "plate": {"weights": {"TE33A-2251": 0.5}, "settled": None, "conflicts_told": []},
        }
    )


def test_a_copy_votes_apart_from_the_original() -> None:
    votes = IdentityVotes()
    votes.vote("plate", "TE33A-2251", 0.75)
    copied = votes.copy()
    assert copied.vote("plate", "TE33A-2251", 0.75) is not None
    assert copied.settled("plate") == ("TE33A-2251", 1.0)
    assert votes.settled("plate") == (None, 0.0) and votes.to_json()["plate"]["weights"] == {
        "TE33A-2251": 0.75
    }


def test_the_saved_tally_round_trips_through_json_and_voting_goes_on_from_it() -> None:
    """Weights, settled values and the conflicts already told all survive a restart."""
    votes = IdentityVotes()
    for value, confidence in [("TE33A-2251", 0.75), ("TE33A-2251", 0.75), ("TE33A-2261", 0.5)]:
        votes.vote("plate", value, confidence)
    votes.vote("series", "TE33A", 0.5)
    saved = votes.to_json()
    assert saved == {
        "series": {"weights": {"TE33A": 0.5}, "settled": None, "conflicts_told": []},
        "plate": {
            "weights": {"TE33A-2251": 1.5, "TE33A-2261": 0.5},
            "settled": "TE33A-2251",
            "conflicts_told": ["TE33A-2261"],
        },
    }
    restored = IdentityVotes.from_json(json.loads(json.dumps(saved)))
    assert restored.to_json() == saved
    assert restored.settled("plate") == ("TE33A-2251", 0.75) and restored.weight("plate") == 1.5
    assert restored.vote("plate", "TE33A-2261", 0.5) is None  # its conflict was told before the restart
    assert restored.vote("plate", "TE33A-2262", 0.5) == Verdict(
        "conflict", "plate", "TE33A-2262", "TE33A-2251", 0.5
    )
    assert restored.vote("series", "TE33A", 1.0) == Verdict("identified", "series", "TE33A", None, 1.0)
