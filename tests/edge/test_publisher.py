"""The spool publisher on its own, against a real broker and a real spool file (no cameras, no model):
a row leaves the spool only once the broker has it, and what was spooled before the connection goes
out marked historical, at the backlog rate."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.observability import EdgeMetrics
from edge.publisher import SpoolPublisher
from edge.spool import Kind, Spool
from shared.codec import encode
from shared.messages import Detection
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests.collector import Collector
from tests.factories import detection
from tests.waiting import wait_until

NODE = "edge-bay1"


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    s = Spool(tmp_path / "spool.sqlite", 10_000_000)
    yield s
    s.close()


def _spool_detections(spool: Spool, site: str, seqs: range) -> None:
    topic = str(Topic(TopicKind.DETECTION, site, NODE, flow="prod", camera="T1-C2"))
    for seq in seqs:
        spool.put(Kind.DETECTION, topic, encode(detection(seq=seq)))


class Wired:
    """A publisher on a real link, wired as the node wires it."""

    def __init__(self, spool: Spool, url: str, rate: float) -> None:
        self.link = MqttConnection(
            BrokerConfig(url=url),
            f"publisher-{uuid.uuid4().hex[:6]}",
            on_connect=self._on_connect,
            on_published=lambda mid: self.publisher.acknowledged(mid),
        )
        self.publisher = SpoolPublisher(NODE, spool, self.link, EdgeMetrics(), rate)

    def _on_connect(self) -> None:
        self.publisher.connected()
        self.publisher.wake()

    def __enter__(self) -> Wired:
        self.link.start()
        self.publisher.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.publisher.stop()
        self.link.stop()


def test_live_rows_are_sent_and_leave_the_spool_once_acknowledged(
    spool: Spool, mqtt_url: str, site: str, collector: Collector
) -> None:
    with Wired(spool, mqtt_url, rate=100) as wired:
        assert wired.link.wait_connected(5)
        _spool_detections(spool, site, range(30))
        wired.publisher.wake()
        wait_until(lambda: spool.depth() == 0, 10, "the spool to empty")
        wait_until(lambda: len(collector.of(Detection)) == 30, 5, "30 detections")
        assert wired.publisher.thread.is_alive()
    received = collector.of(Detection)
    assert [d.seq for d in received] == list(range(30))
    assert not any(d.historical for d in received)


def test_the_backlog_goes_out_historical_in_order_at_its_rate(
    spool: Spool, mqtt_url: str, site: str, collector: Collector
) -> None:
    _spool_detections(spool, site, range(40))  # before the connection: the backlog
    started = time.monotonic()
    with Wired(spool, mqtt_url, rate=20) as wired:
        # The first of the backlog arriving means the connection's backlog boundary is drawn.
        wait_until(lambda: collector.of(Detection), 5, "the first of the backlog")
        _spool_detections(spool, site, range(40, 45))  # live: not held back by the backlog
        wired.publisher.wake()
        wait_until(lambda: len(collector.of(Detection)) == 45, 15, "backlog and live detections")
        elapsed = time.monotonic() - started
        wait_until(lambda: spool.depth() == 0, 5, "the spool to empty")
    received = collector.of(Detection)
    backlog = [d.seq for d in received if d.historical]
    assert backlog == list(range(40))
    assert sorted(d.seq for d in received if not d.historical) == list(range(40, 45))
    order = [d.seq for d in received]
    assert max(order.index(seq) for seq in range(40, 45)) < order.index(39), "live waited for the backlog"
    assert elapsed >= 1.5, f"40 backlog messages at 20/s took {elapsed:.1f} s"
