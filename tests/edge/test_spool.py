"""The store-and-forward spool: durable, ordered, bounded, thumbnails dropped first."""

from __future__ import annotations

from pathlib import Path

from edge.spool import Kind, Spool


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
