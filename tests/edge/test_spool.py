"""The store-and-forward spool: durable, ordered, bounded, thumbnails dropped first."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import pytest

from edge.spool import Kind, Spool, SpoolError


def test_messages_survive_a_restart_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10_000)
    ids = [spool.put(Kind.DETECTION, f"t/{i}", f"payload {i}".encode()) for i in range(5)]
    spool.ack(ids[1])  # type: ignore[arg-type]
    spool.close()
    again = Spool(tmp_path / "spool.sqlite", max_bytes=10_000)
    assert [m.topic for m in again.pending()] == ["t/0", "t/2", "t/3", "t/4"]
    assert again.bytes == sum(len(f"payload {i}") for i in (0, 2, 3, 4))


def test_counters_continue_across_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    assert [spool.next_counter("seq") for _ in range(3)] == [0, 1, 2]
    assert spool.next_counter("bd_seq") == 0
    spool.close()
    assert Spool(tmp_path / "spool.sqlite", max_bytes=1000).next_counter("seq") == 3


def test_a_full_spool_drops_thumbnails_before_detections(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    for i in range(4):
        spool.put(Kind.THUMBNAIL, f"thumb/{i}", b"t" * 150)
        spool.put(Kind.DETECTION, f"det/{i}", b"d" * 100)
    assert spool.bytes == 1000
    spool.put(Kind.DETECTION, "det/new", b"d" * 300)
    kept = [m.topic for m in spool.pending()]
    assert kept == ["det/0", "det/1", "thumb/2", "det/2", "thumb/3", "det/3", "det/new"]
    assert spool.dropped[Kind.THUMBNAIL] == 2 and spool.dropped[Kind.DETECTION] == 0
    # With no thumbnails left, the oldest detections make room; a thumbnail never does that.
    spool.put(Kind.DETECTION, "det/bigger", b"d" * 600)
    assert spool.dropped[Kind.THUMBNAIL] == 4
    assert spool.dropped[Kind.DETECTION] >= 1
    assert spool.put(Kind.THUMBNAIL, "thumb/late", b"t" * 900) is None
    assert "det/bigger" in [m.topic for m in spool.pending()]
    assert spool.bytes <= 1000


def test_pending_windows_and_acks(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10_000)
    ids = [spool.put(Kind.DETECTION, f"t/{i}", b"x") for i in range(6)]
    assert [m.id for m in spool.pending(after_id=ids[1], up_to_id=ids[3])] == ids[2:4]  # type: ignore[index]
    for i in ids:
        spool.ack(i)  # type: ignore[arg-type]
    assert spool.depth() == 0 and spool.bytes == 0


# What follows pins each bound, default and field exactly, so that `make mutate MODULE=spool`
# (docs/testing.md) finds no small change to edge/spool.py that the tests let through.


def test_a_spool_makes_its_folder_and_reports_its_backlog_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "var" / "lib" / "spool.sqlite"
    spool = Spool(path, max_bytes=1000)
    assert spool.path == path and path.exists()
    spool.put(Kind.DETECTION, "t/0", b"abc")
    spool.put(Kind.THUMBNAIL, "t/1", b"defgh")
    spool.close()
    with caplog.at_level(logging.INFO, logger="edge.spool"):
        Spool(path, max_bytes=1000).close()
    assert [r.getMessage() for r in caplog.records] == [
        f"spool {path} holds 2 messages (8 bytes) from before the restart"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge.spool"):
        Spool(tmp_path / "empty.sqlite", max_bytes=1000).close()
    assert caplog.records == []


def test_a_spool_that_cannot_be_opened_says_which_and_why(tmp_path: Path) -> None:
    (tmp_path / "spool.sqlite").mkdir()
    with pytest.raises(SpoolError, match="^" + re.escape(f"cannot open spool {tmp_path / 'spool.sqlite'}: ")):
        Spool(tmp_path / "spool.sqlite", max_bytes=1000)


def test_a_message_comes_back_as_it_was_put(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    before = time.time()
    first = spool.put(Kind.THUMBNAIL, "t/thumb", b"\xff\xd8\xff")
    second = spool.put(Kind.SHADOW, "t/shadow", b"s", qos=0, retain=True)
    [a, b] = spool.pending()
    assert (a.id, a.kind, a.topic, a.payload, a.qos, a.retain) == (
        first,
        Kind.THUMBNAIL,
        "t/thumb",
        b"\xff\xd8\xff",
        1,
        False,
    )
    assert (b.id, b.kind, b.topic, b.payload, b.qos, b.retain) == (
        second,
        Kind.SHADOW,
        "t/shadow",
        b"s",
        0,
        True,
    )
    assert isinstance(a.payload, bytes) and isinstance(a.retain, bool)
    assert before <= a.created <= b.created <= time.time()


def test_the_spool_is_shared_by_the_threads_of_a_node(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    worker = threading.Thread(target=spool.put, args=(Kind.DETECTION, "t/0", b"x"))
    worker.start()
    worker.join()
    assert [m.topic for m in spool.pending()] == ["t/0"]


def test_the_newest_id_is_known_and_zero_when_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=1000)
    assert spool.last_id() == 0
    ids = [spool.put(Kind.DETECTION, f"t/{i}", b"x") for i in range(3)]
    assert spool.last_id() == ids[-1] == 3


def test_pending_gives_a_hundred_at_a_time_whatever_the_ids(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=10_000)
    for i in range(150):
        spool.put(Kind.DETECTION, f"t/{i}", b"x")
    assert [m.id for m in spool.pending()] == list(range(1, 101))
    assert [m.id for m in spool.pending(after_id=140)] == list(range(141, 151))


def test_a_message_of_exactly_the_spools_size_fits_and_one_byte_more_is_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=100)
    assert spool.put(Kind.THUMBNAIL, "t/exact", b"t" * 100) is not None
    assert spool.put(Kind.DETECTION, "t/over", b"d" * 101) is None
    assert spool.put(Kind.DETECTION, "t/over", b"d" * 101) is None
    assert spool.dropped == {Kind.DETECTION: 2, Kind.THUMBNAIL: 0, Kind.SHADOW: 0}


def test_a_thumbnail_that_fills_the_spool_exactly_displaces_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite", max_bytes=100)
    spool.put(Kind.DETECTION, "det/0", b"d" * 60)
    assert spool.put(Kind.THUMBNAIL, "thumb/0", b"t" * 40) is not None
    assert spool.bytes == 100 and spool.dropped[Kind.DETECTION] == 0
