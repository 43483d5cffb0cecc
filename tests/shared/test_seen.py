"""Where no camera can place a locomotive's end: the stretches of stations outside every camera's
seen stretch, as `layout check` names them."""

from __future__ import annotations

from typer.testing import CliRunner

from depotwatch.cli import app
from shared.layout import Facility
from shared.seen import seen_stretches, union, unseen_at_stations
from tests.conftest import EXAMPLE_LAYOUT


def test_spans_are_merged_where_they_overlap_or_touch() -> None:
    assert union([(5, 8), (0, 2), (2, 3), (7, 9)]) == [(0, 3), (5, 9)]


def test_a_station_stretch_outside_every_seen_span_is_unseen(facility: Facility) -> None:
    # T1's stations: A 2.5–26, B 27–50.5.
    seen = [(2.0, 13.0), (14.2, 25.0), (26.5, 51.0)]
    assert unseen_at_stations(facility, "T1", seen) == [(13.0, 14.2), (25.0, 26.0)]
    assert unseen_at_stations(facility, "T1", [(0.0, 70.0)]) == []
    assert unseen_at_stations(facility, "T1", []) == [(2.5, 26.0), (27.0, 50.5)]


def test_layout_check_names_the_stretches_of_stations_no_camera_sees(facility: Facility) -> None:
    seen = seen_stretches(facility, "T1")
    last_seen = seen["T1-C4"][1]
    assert last_seen < facility.stations["T1-B"].end_m  # the example's last camera sees short of pit B's end
    result = CliRunner().invoke(app, ["layout", "check", str(EXAMPLE_LAYOUT)])
    assert result.exit_code == 0, result.output
    [t1] = [line for line in result.stderr.splitlines() if line.startswith("warning: track T1:")]
    assert f"{last_seen:.1f}–50.5 m" in t1
