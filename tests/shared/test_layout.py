"""The facility layout: the example loads, each kind of mistake is reported at its key."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.errors import LayoutError
from shared.layout import Facility, load_facility, parse_facility
from sim.fleet import SERIES
from tests.conftest import EXAMPLE_LAYOUT

RAW: dict[str, Any] = yaml.safe_load(EXAMPLE_LAYOUT.read_text())


def test_example_is_a_realistic_depot(facility: Facility) -> None:
    assert len(facility.tracks) >= 4
    assert len(facility.stations) >= 8
    assert len(facility.cameras) >= 12
    assert {cam.node for cam in facility.cameras.values()} == set(facility.nodes)


def test_example_views_overlap_along_each_track(facility: Facility) -> None:
    for tid in facility.tracks:
        views = sorted((c.view.start_m, c.view.end_m) for c in facility.cameras_on_track(tid).values())
        assert len(views) >= 2
        for (_, end), (start, _) in itertools.pairwise(views):
            assert start < end - 0.5, f"cameras on {tid} leave a gap between {end} and {start} m"


def test_no_camera_sees_a_whole_locomotive(facility: Facility) -> None:
    shortest = min(series.length_m for series in SERIES.values())
    assert all(cam.view.length_m < shortest for cam in facility.cameras.values())


def test_each_station_is_fully_covered_by_cameras(facility: Facility) -> None:
    for sid, station in facility.stations.items():
        views = sorted(
            (c.view.start_m, c.view.end_m) for c in facility.cameras_on_track(station.track).values()
        )
        reach = station.start_m
        for start, end in views:
            if start <= reach < end:
                reach = end
        assert reach >= station.end_m, f"station {sid} is unseen beyond {reach} m"


def test_station_at_picks_the_largest_overlap(facility: Facility) -> None:
    assert facility.station_at("T1", 5.0, 20.0) == "T1-A"
    assert facility.station_at("T1", 20.0, 50.0) == "T1-B"
    assert facility.station_at("T1", 60.0, 69.0) is None


def test_a_locomotive_astride_two_stations_keeps_the_one_it_had_until_the_other_clearly_wins(
    facility: Facility,
) -> None:
    # T1-A is 2.5-26.0 m, T1-B 27.0-50.5 m: 18-35 m overlaps each by 8 m.
    assert facility.station_at("T1", 18.2, 35.2, kept="T1-A", margin_m=0.5) == "T1-A"
    assert facility.station_at("T1", 17.8, 34.8, kept="T1-B", margin_m=0.5) == "T1-B"
    assert facility.station_at("T1", 18.8, 35.8, kept="T1-A", margin_m=0.5) == "T1-B"
    assert facility.station_at("T1", 27.5, 45.0, kept="T1-A", margin_m=0.5) == "T1-B"  # A no longer under it
    assert facility.station_at("T1", 18.2, 35.2) == "T1-B"


def test_site_point_follows_the_polyline() -> None:
    data = copy.deepcopy(RAW)
    data["tracks"]["T1"] |= {"length_m": 20.0, "polyline": [[0, 0], [10, 0], [10, 10]]}
    for cam in [c for c in data["cameras"].values() if c["track"] == "T1"]:
        cam["track"] = "T2"
    for st in [s for s in data["stations"].values() if s["track"] == "T1"]:
        st["track"] = "T3"
    data["stations"] = {k: v for k, v in data["stations"].items() if not k.startswith("T1")}
    track = parse_facility(data).tracks["T1"]
    assert track.site_point(5.0) == pytest.approx((5.0, 0.0))
    assert track.site_point(15.0) == pytest.approx((10.0, 5.0))
    assert track.site_point(99.0) == pytest.approx((10.0, 10.0))


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for key in parents:
            node = node[key]
        del node[last]

    return apply


BAD_LAYOUTS: list[tuple[str, Mutation, str, str]] = [
    ("overlapping stations", _set("stations.T1-B.start_m", 20.0), "stations.T1-B", "overlaps station T1-A"),
    (
        "camera on unknown track",
        _set("cameras.T2-C3.track", "T9"),
        "cameras.T2-C3.track",
        "unknown track 'T9'",
    ),
    ("camera on unknown node", _set("cameras.T2-C3.node", "edge-x"), "cameras.T2-C3.node", "unknown node"),
    ("station on unknown track", _set("stations.T3-A.track", "T7"), "stations.T3-A.track", "unknown track"),
    ("station past track end", _set("stations.T4-B.end_m", 90.0), "stations.T4-B.end_m", "beyond the end"),
    (
        "calibration with 3 points",
        lambda d: d["cameras"]["T1-C1"]["calibration"].__setitem__(
            "points", d["cameras"]["T1-C1"]["calibration"]["points"][:3]
        ),
        "cameras.T1-C1.calibration.points",
        "at least 4 items",
    ),
    (
        "calibration points on one line",
        lambda d: [p.__setitem__("offset_m", 0.0) for p in d["cameras"]["T1-C1"]["calibration"]["points"]],
        "cameras.T1-C1.calibration",
        "lie on one line",
    ),
    (
        "calibration point mis-surveyed",
        lambda d: d["cameras"]["T1-C2"]["calibration"]["points"][2].__setitem__(
            "track_m", d["cameras"]["T1-C2"]["calibration"]["points"][2]["track_m"] + 1.0
        ),
        "cameras.T1-C2.calibration",
        "reprojection error",
    ),
    (
        "calibration pixel off the image",
        _set("cameras.T1-C2.resolution", [1000, 720]),
        "cameras.T1-C2",
        "outside the 1000x720 image",
    ),
    (
        "view beyond the image",
        _set("cameras.T3-C1.view.end_m", 25.0),
        "cameras.T3-C1.view.end_m",
        "outside the image",
    ),
    ("view reversed", _set("cameras.T3-C1.view.start_m", 16.0), "cameras.T3-C1.view", "must be greater"),
    (
        "typo in a key",
        _set("cameras.T1-C1.trak", "T1"),
        "cameras.T1-C1.trak",
        "unknown setting; did you mean 'track'?",
    ),
    ("missing key", _delete("cameras.T1-C1.calibration"), "cameras.T1-C1.calibration", "Field required"),
    (
        "sim source of another camera",
        _set("cameras.T1-C1.source", "sim://T1-C2"),
        "cameras.T1-C1.source",
        "sim://T1-C1",
    ),
    ("id with a slash", lambda d: d["nodes"].__setitem__("edge/9", {}), "nodes.edge/9", "ids may hold"),
    ("polyline length disagrees", _set("tracks.T2.length_m", 90.0), "tracks.T2", "polyline is 70.00 m long"),
    (
        "negative station start",
        _set("stations.T1-A.start_m", -3.0),
        "stations.T1-A.start_m",
        "greater than or equal",
    ),
    ("no cameras", _set("cameras", {}), "cameras", "at least 1 item"),
]


@pytest.mark.parametrize(("case", "mutate", "key", "message"), BAD_LAYOUTS, ids=[c[0] for c in BAD_LAYOUTS])
def test_bad_layout_names_the_key_at_fault(case: str, mutate: Mutation, key: str, message: str) -> None:
    data = copy.deepcopy(RAW)
    mutate(data)
    with pytest.raises(LayoutError) as info:
        parse_facility(data, "facility.yaml")
    matching = [issue for issue in info.value.issues if issue.key == key or issue.key.startswith(key + ".")]
    assert matching, f"{case}: no issue at {key}; got {info.value}"
    assert any(message in issue.message for issue in matching), f"{case}: {info.value}"
    assert str(info.value).startswith("facility.yaml:")


def test_unreadable_or_invalid_yaml_fails_with_the_file_name(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="cannot read file"):
        load_facility(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("tracks: [unclosed\n")
    with pytest.raises(LayoutError, match="not valid YAML"):
        load_facility(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(LayoutError, match="site: Field required"):
        load_facility(empty)
