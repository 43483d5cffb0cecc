"""When the broker link makes an edge node unhealthy: plain state in, one line (or nothing) out."""

from __future__ import annotations

import dataclasses
from typing import Any

from edge.health import broker_problem
from shared.mqtt import LinkState

URL = "mqtt://10.0.0.5:1883"
STARTING = LinkState(
    url=URL,
    connected=False,
    ever_connected=False,
    failed_attempts=0,
    failures_total=0,
    last_error=None,
    down_for_s=0.5,
)


def link(**changes: Any) -> LinkState:
    return dataclasses.replace(STARTING, **changes)


def test_a_connected_link_is_no_problem_whatever_failed_before() -> None:
    up = link(connected=True, ever_connected=True, failures_total=9, down_for_s=None)
    assert broker_problem(up) is None


def test_a_node_starting_up_is_unhealthy_from_its_first_failed_attempt() -> None:
    assert broker_problem(link(), grace_s=10) is None
    problem = broker_problem(link(failed_attempts=1, last_error="connection refused"), grace_s=10)
    assert problem == (
        f"MQTT: never connected to broker {URL} in 0 s: connection refused (1 failed attempt; see broker.url)"
    )


def test_a_first_attempt_that_never_answers_is_a_problem_after_the_grace() -> None:
    problem = broker_problem(link(down_for_s=12.0), grace_s=10)
    assert problem == f"MQTT: never connected to broker {URL} in 12 s: no answer yet (see broker.url)"


def test_a_lost_connection_is_a_problem_only_beyond_the_grace() -> None:
    lost = link(ever_connected=True, failed_attempts=2, last_error="connection refused")
    assert broker_problem(dataclasses.replace(lost, down_for_s=9.0), grace_s=10) is None
    problem = broker_problem(dataclasses.replace(lost, down_for_s=31.0), grace_s=10)
    assert problem == (
        f"MQTT: disconnected from broker {URL} for 31 s: connection refused "
        "(2 failed attempts; see broker.url)"
    )
