"""The edge node as a Sparkplug B 3.0 edge node, checked on a real broker with Eclipse Tahu's decoder:
births wait for the primary host, NBIRTH/DBIRTH/DDATA/NDEATH carry the specification's bdSeq, seq, QoS
and retain, Rebirth is obeyed, the spool is held while the host is offline and nothing is lost, and a
killed node's Will is its NDEATH."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.config import SparkplugConfig
from edge.node import EdgeNode
from shared.layout import Facility, parse_facility
from shared.messages import Detection
from sim.edge_source import with_sim
from tests.collector import Collector
from tests.edge.nodes import NODE, edge_process, facility_data, node_config
from tests.sparkplug import (
    SparkplugRecorder,
    TahuCodec,
    metric_types,
    metric_values,
    now_ms,
    publish_raw,
    publish_state,
    retained,
)
from tests.waiting import wait_until

CAMERAS = ["T1-C1", "T1-C2", "T1-C3", "T1-C4"]


@pytest.fixture
def facility(site: str) -> Facility:
    return parse_facility(facility_data(site))


def _births(recorder: SparkplugRecorder) -> list[dict[str, Any]]:
    return [recorder.codec.decode(m.payload) for m in recorder.of("NBIRTH", NODE)]


def _once_quiet(read: Callable[[], set[int]], quiet_s: float = 1.0, timeout: float = 15.0) -> set[int]:
    """What `read()` gives once it has not changed for `quiet_s`."""
    last, since = read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() - since > timeout:
            raise AssertionError(f"still changing after {timeout} s")
        time.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def _seqs_are_consecutive(sequence: list[tuple[Any, dict[str, Any]]]) -> list[str]:
    """What breaks the specification's seq rule: NBIRTH at 0, each later message one more (mod 256),
    NDEATH with none."""
    problems, expected = [], None
    for message, decoded in sequence:
        seq = decoded.get("seq")
        if message.kind == "NDEATH":
            if seq is not None:
                problems.append(f"NDEATH carries seq {seq}")
            expected = None
            continue
        if message.kind == "NBIRTH":
            expected = 0
        if expected is not None and seq != expected:
            problems.append(f"{message.topic}: seq {seq}, expected {expected}")
        expected = None if seq is None else (seq + 1) % 256
    return problems


def test_births_wait_for_the_primary_host_and_the_spool_is_held_while_it_is_offline(
    tmp_path: Path,
    mqtt_url: str,
    site: str,
    facility: Facility,
    collector: Collector,
    recorder: SparkplugRecorder,
    codec: TahuCodec,
) -> None:
    host = f"scada-{site}"  # a STATE retained by an earlier run on the same broker is never this one's
    sparkplug = SparkplugConfig(enabled=True, primary_host_id=host, interval_s=0.5)
    node = EdgeNode.open(node_config(tmp_path, mqtt_url, sparkplug=sparkplug), facility, with_sim())
    node.start()
    try:
        wait_until(lambda: node.spool.depth() >= 8, 20, "detections to pile up in the held spool")
        assert not recorder.of("NBIRTH", NODE), "born before the primary host said online"
        assert not collector.of(Detection), "the spool was sent while the primary host was unknown"
        assert node.health()["spool_held"]

        first_online = now_ms()
        publish_state(mqtt_url, host, True, first_online)
        wait_until(lambda: len(recorder.of("DBIRTH", NODE)) >= 4, 10, "NBIRTH and four DBIRTHs")
        wait_until(lambda: any(not d.historical for d in collector.of(Detection)), 10, "live detections")
        assert any(d.historical for d in collector.of(Detection)), "what was held came as live"

        # DDATA on change only: a camera switched off is reported, with only what changed.
        node.workers["T1-C2"].set_enabled(False)
        wait_until(
            lambda: any(
                metric_values(codec.decode(m.payload)).get("State") == "disabled"
                for m in recorder.of("DDATA", NODE)
                if m.topic.endswith("/T1-C2")
            ),
            10,
            "a DDATA saying T1-C2 is disabled",
        )

        # Rebirth, asked by a command that Tahu encodes.
        rebirth = codec.encode(
            {
                "timestamp": now_ms(),
                "metrics": [{"name": "Node Control/Rebirth", "type": "Boolean", "value": True}],
            }
        )
        publish_raw(mqtt_url, f"spBv1.0/{site}/NCMD/{NODE}", rebirth)
        wait_until(lambda: len(recorder.of("NBIRTH", NODE)) >= 2, 10, "the rebirth")

        # The primary host goes offline: NDEATH, a new session that waits, the spool held.
        publish_state(mqtt_url, host, False, first_online)
        wait_until(lambda: recorder.of("NDEATH", NODE), 10, "the NDEATH after the host went offline")
        wait_until(lambda: node.health()["spool_held"], 5, "the spool to be held")
        # What was in flight when the hold began lands: the detections received stop changing.
        sent_before = _once_quiet(lambda: {d.seq for d in collector.of(Detection)})
        wait_until(lambda: node.spool.depth() >= 8, 20, "detections to pile up again")
        publish_state(mqtt_url, host, True, first_online - 60_000)  # an older session's: ignored
        time.sleep(2.0)
        assert len(recorder.of("NBIRTH", NODE)) == 2, "born again on a STATE older than the last"
        assert {d.seq for d in collector.of(Detection)} == sent_before, "sent while the host was offline"

        publish_state(mqtt_url, host, True, now_ms())
        wait_until(lambda: len(recorder.of("NBIRTH", NODE)) >= 3, 10, "the birth of the new session")
        wait_until(lambda: node.spool.depth() < 8, 20, "the held spool to drain")
        newest = max(d.seq for d in collector.of(Detection))
        wait_until(
            lambda: set(range(newest + 1)) <= {d.seq for d in collector.of(Detection)},
            20,
            "every detection up to the newest",
        )
    finally:
        node.stop()
    wait_until(lambda: len(recorder.of("NDEATH", NODE)) >= 2, 5, "the NDEATH of the clean stop")

    births = _births(recorder)
    deaths = [codec.decode(m.payload) for m in recorder.of("NDEATH", NODE)]
    first, rebirth_birth, second = births[:3]
    assert metric_types(first)["bdSeq"] == "Int64"
    assert metric_values(first)["Node Control/Rebirth"] is False
    assert metric_values(rebirth_birth)["bdSeq"] == metric_values(first)["bdSeq"], "rebirth took a new bdSeq"
    assert metric_values(deaths[0])["bdSeq"] == metric_values(first)["bdSeq"]
    assert metric_values(second)["bdSeq"] == (metric_values(first)["bdSeq"] + 1) % 256
    assert metric_values(deaths[-1])["bdSeq"] == metric_values(second)["bdSeq"]
    assert all(b["seq"] == 0 for b in births)
    assert not _seqs_are_consecutive(recorder.sequence(NODE))
    exact_qos = recorder.keeps_publish_qos()
    for kind in ("NBIRTH", "DBIRTH", "DDATA"):
        flags = {(m.qos if exact_qos else 0, m.retain) for m in recorder.of(kind, NODE)}
        assert flags == {(0, False)}, f"{kind} went with (QoS, retain) {flags}"
    assert all(m.qos == 1 and not m.retain for m in recorder.of("NDEATH", NODE))
    dbirths = {m.topic.rsplit("/", 1)[1]: codec.decode(m.payload) for m in recorder.of("DBIRTH", NODE)[:4]}
    assert sorted(dbirths) == CAMERAS
    camera = metric_types(dbirths["T1-C1"])
    assert camera["State"] == "String" and camera["FPS Captured"] == "Double"
    assert camera["Reconnects Last Hour"] == "Int32" and camera["Spool Depth"] == "UInt64"
    ddata = [codec.decode(m.payload) for m in recorder.of("DDATA", NODE) if m.topic.endswith("/T1-C2")]
    assert all(len(d["metrics"]) < len(dbirths["T1-C2"]["metrics"]) for d in ddata), "DDATA sent all"
    seqs = sorted(d.seq for d in collector.of(Detection))
    assert seqs == list(range(seqs[-1] + 1)), "a detection was lost or doubled"
    assert retained(mqtt_url, f"spBv1.0/{site}/NDEATH/{NODE}") is None, "an NDEATH was retained"


def test_a_killed_node_s_will_is_its_ndeath_with_the_birth_s_bdseq(
    tmp_path: Path, mqtt_url: str, site: str, recorder: SparkplugRecorder, codec: TahuCodec
) -> None:
    process = edge_process(
        tmp_path, site, mqtt_url, sparkplug={"enabled": True, "wait_for_primary_host": False}
    )
    try:
        wait_until(lambda: recorder.of("NBIRTH", NODE), 60, "the node's NBIRTH")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        wait_until(lambda: recorder.of("NDEATH", NODE), 20, "the Will, an NDEATH")
    finally:
        if process.poll() is None:
            process.kill()
    birth = codec.decode(recorder.of("NBIRTH", NODE)[-1].payload)
    [will] = recorder.of("NDEATH", NODE)
    death = codec.decode(will.payload)
    assert metric_values(death)["bdSeq"] == metric_values(birth)["bdSeq"]
    assert metric_types(death)["bdSeq"] == "Int64"
    assert "seq" not in death
    assert will.qos == 1 and not will.retain
