"""How a replayed backlog window takes the place of the live positions (pure logic): windows per
track, a newcomer named by the live estimator later keeps the live id, a live id the blind estimator
reused for a newcomer goes to the newcomer after the handover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloud.backlog_replay import BacklogWindow, Replay, backlog_windows, corrected
from cloud.reports import Stood, visits

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_windows_are_per_track_and_split_at_gaps() -> None:
    times = [("T2", at(10)), ("T1", at(0)), ("T1", at(0.5)), ("T1", at(5)), ("T2", at(10.5))]
    assert backlog_windows(times) == [
        BacklogWindow("T1", at(0), at(0.5)),
        BacklogWindow("T1", at(5), at(5)),
        BacklogWindow("T2", at(10), at(10.5)),
    ]


WINDOW = BacklogWindow("T1", at(60), at(120))
AFTER = WINDOW.handover + timedelta(minutes=1)


def test_a_newcomer_the_live_estimator_named_on_its_return_keeps_the_live_id() -> None:
    # Live: L1 at T1-A throughout (unseen during the window), L7 first recorded at T1-B on return.
    live = [
        Stood("L1", "T1", at(0), "T1-A"),
        Stood("L7", "T1", at(121), "T1-B"),
        Stood("L7", "T1", AFTER, "T1-B"),
    ]
    replayed = Replay(
        WINDOW,
        stood=[Stood("L1", "T1", at(60), "T1-A"), Stood("unrecorded-T1-1", "T1", at(90), "T1-B")],
        departures={},
        occupants={"T1-A": "L1", "T1-B": "unrecorded-T1-1"},
    )
    stood, gone = corrected(live, {}, [replayed])
    found = visits(stood, gone, T0, at(240))
    assert [(v.loco_id, v.station, v.arrived, v.left) for v in found] == [
        ("L1", "T1-A", at(0), None),
        ("L7", "T1-B", at(90), None),
    ]


def test_a_live_id_reused_for_a_newcomer_goes_to_the_newcomer_after_the_handover() -> None:
    # Live: L1 never left (the newcomer at its station was taken for it); it left at 130 after all.
    live = [Stood("L1", "T1", at(0), "T1-A"), Stood("L1", "T1", AFTER, "T1-A")]
    replayed = Replay(
        WINDOW,
        stood=[Stood("L1", "T1", at(60), "T1-A"), Stood("unrecorded-T1-1", "T1", at(100), "T1-A")],
        departures={"L1": at(80)},
        occupants={"T1-A": "unrecorded-T1-1"},
    )
    stood, gone = corrected(live, {"L1": at(200)}, [replayed])
    found = visits(stood, gone, T0, at(240))
    assert [(v.loco_id, v.station, v.arrived, v.left) for v in found] == [
        ("L1", "T1-A", at(0), at(80)),
        ("unrecorded-T1-1", "T1-A", at(100), at(200)),
    ]


def test_one_that_stayed_keeps_its_id_when_the_live_estimator_lost_it_on_its_return() -> None:
    # Live: L1 at T1-A, recorded leaving on the cameras' return, and the same locomotive taken for a
    # new one, L9; the replay saw L1 stay throughout.
    live = [
        Stood("L1", "T1", at(0), "T1-A"),
        Stood("L9", "T1", at(121), "T1-A"),
        Stood("L9", "T1", AFTER, "T1-A"),
    ]
    replayed = Replay(
        WINDOW, stood=[Stood("L1", "T1", at(60), "T1-A")], departures={}, occupants={"T1-A": "L1"}
    )
    stood, gone = corrected(live, {"L1": at(121), "L9": at(200)}, [replayed])
    found = visits(stood, gone, T0, at(240))
    assert [(v.loco_id, v.station, v.arrived, v.left) for v in found] == [("L1", "T1-A", at(0), at(200))]
