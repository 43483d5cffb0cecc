"""The one-command demo end to end: broker, cloud and edge nodes as processes, checked against the
simulator's ground truth through the API, and the live map in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from depotwatch.embedded_broker import free_port
from shared.layout import Facility
from sim.scenario import Scenario
from sim.world import World
from tests.browser import browser_page, needs_chromium
from tests.conftest import EXAMPLE_LAYOUT, REPO
from tests.waiting import wait_until

NODES = 2  # edge-bay1 and edge-bay2: tracks T1 and T2, 8 cameras (what two cores render at 1 fps)
TRACKS = {"T1", "T2"}
SPEED = 10.0
FIRST_MOVE_AFTER_S = 100.0
SCREENSHOT = REPO / "docs" / "img" / "map.png"
# An end within this distance of the simulator's counts as right (the LPE's own error is centimetres;
# the rest is the state lagging the simulation by up to a second or two).
END_TOLERANCE_M = 1.0


@dataclass
class RunningDemo:
    url: str
    viewer_key: str
    workdir: Path
    epoch: datetime
    speed: float
    process: subprocess.Popen[str]
    lines: list[str]

    def get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", headers={"X-API-Key": self.viewer_key})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def sim_seconds(self) -> float:
        return (time.time() - self.epoch.timestamp()) * self.speed


def _next_move(facility: Facility, after_s: float, tracks: set[str]) -> tuple[float, str]:
    """When and where the simulator next moves a locomotive on `tracks`."""
    world = World(facility, Scenario())
    t = after_s
    while t < world.horizon_s:
        moving = [loco.track_id for loco in world.locos_at(t) if loco.moving and loco.track_id in tracks]
        if moving:
            return t, moving[0]
        t += 1.0
    raise AssertionError("the scenario moves nothing on these tracks")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, facility: Facility) -> Iterator[RunningDemo]:
    workdir = tmp_path_factory.mktemp("demo")
    port = free_port()
    # Start the world so that its first move on T1/T2 comes when both tests are ready for it.
    first_move, _ = _next_move(facility, 0.0, TRACKS)
    sim_start = max(first_move - FIRST_MOVE_AFTER_S * SPEED, 0.0)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "depotwatch.cli",
            "demo",
            "--port",
            str(port),
            "--workdir",
            str(workdir),
            "--nodes",
            str(NODES),
            "--speed",
            str(SPEED),
            "--layout",
            str(EXAMPLE_LAYOUT),
            "--sim-start",
            str(sim_start),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal gives a command
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    key = wait_until(
        lambda: next((m.group(1) for line in lines if (m := re.search(r"viewer key\s+(\S+)", line))), None),
        60,
        "the demo to print its keys",
    )
    edge = yaml.safe_load((workdir / "edge-bay1.yaml").read_text())
    running = RunningDemo(
        f"http://127.0.0.1:{port}",
        key,
        workdir,
        datetime.fromisoformat(edge["sim"]["epoch"]),
        float(edge["sim"]["speed"]),
        process,
        lines,
    )
    try:
        yield running
    finally:
        # Ctrl-C as a terminal sends it: to the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert process.returncode == 0, "".join(lines[-30:])
        assert "demo: stopped" in "".join(lines)
        # Producers stop, then consumers, then the broker: no node, cloud or worker saw it go away.
        logs = sorted(workdir.glob("*.log"))
        assert {"cloud.log", "recognition.log"} <= {log.name for log in logs}, logs
        for service_log in logs:
            assert "lost the connection" not in service_log.read_text(), (
                service_log.name,
                service_log.read_text()[-3000:],
            )


def _truth(facility: Facility, t: float, tracks: set[str]) -> dict[str, list[tuple[float, float]]]:
    """Each track's locomotives at sim second t, clipped to what the track's cameras cover."""
    world = World(facility, Scenario())
    out: dict[str, list[tuple[float, float]]] = {track: [] for track in tracks}
    for loco in world.locos_at(t):
        if loco.track_id not in tracks:
            continue
        views = [c.view for c in facility.cameras_on_track(loco.track_id).values()]
        lo, hi = min(v.start_m for v in views), max(v.end_m for v in views)
        if loco.end_m > lo + 1.0 and loco.start_m < hi - 1.0:
            out[loco.track_id].append((max(loco.start_m, lo), min(loco.end_m, hi)))
    return out


def _matches(state: dict[str, Any], truth: dict[str, list[tuple[float, float]]]) -> bool:
    for track in state["tracks"]:
        expected = truth.get(track["track_id"])
        if expected is None:
            continue
        seen = sorted((loco["start_m"], loco["end_m"]) for loco in track["locos"])
        if len(seen) != len(expected):
            return False
        for (s0, s1), (t0, t1) in zip(seen, sorted(expected), strict=True):
            if abs(s0 - t0) > END_TOLERANCE_M or abs(s1 - t1) > END_TOLERANCE_M:
                return False
    return True


def test_the_demo_state_holds_the_simulators_locomotives(demo: RunningDemo, facility: Facility) -> None:
    tracks = TRACKS

    def agrees() -> bool:
        try:
            state = demo.get("/api/state")
        except urllib.error.URLError:
            return False  # the cloud process is still starting
        return any(t["locos"] for t in state["tracks"]) and _matches(
            state, _truth(facility, demo.sim_seconds(), tracks)
        )

    wait_until(agrees, 120, "the API state to agree with the simulator on T1 and T2", interval=1.0)
    expected = {cid for cid, cam in facility.cameras.items() if cam.track in tracks}

    def online() -> set[str]:
        return {c["camera_id"] for c in demo.get("/api/cameras") if c["state"] == "online"}

    # A camera may stall for a moment when the machine is busy (CI runs a database and a broker beside
    # the demo); each must be reported online, if not at the same instant.
    seen: set[str] = set()
    wait_until(lambda: (seen.update(online()), seen >= expected)[1], 60, "every camera of T1 and T2 online")


def test_the_consumers_are_subscribed_before_any_edge_node_starts(demo: RunningDemo) -> None:
    """Nothing an edge node sends finds no subscriber (a consumer says it is ready once its broker
    acknowledged its subscriptions: cloud.readiness)."""
    log = "".join(demo.lines)
    ready = [log.index(f"demo: {name} is subscribed") for name in ("cloud", "recognition")]
    first_node = log.index("demo: started edge-")
    assert max(ready) < first_node


def test_every_locomotive_standing_in_view_is_named_with_its_painted_number(
    demo: RunningDemo, facility: Facility
) -> None:
    """The recognition worker is subscribed before the first thumbnail is sent, and a locomotive left
    unnamed is asked for again (not only at the edge's 5-minute refresh)."""
    world = World(facility, Scenario())

    def unnamed() -> list[str]:
        t = demo.sim_seconds()
        painted = {}
        for loco in world.locos_at(t):
            views = [c.view for c in facility.cameras_on_track(loco.track_id).values()]
            lo, hi = min(v.start_m for v in views), max(v.end_m for v in views)
            if loco.track_id in TRACKS and not loco.moving and lo < loco.start_m and loco.end_m < hi:
                painted[(loco.track_id, loco.start_m)] = loco.loco.plate
        missing = []
        for track in demo.get("/api/state")["tracks"]:
            for loco in track["locos"]:
                plate = next(
                    (
                        p
                        for (tid, start), p in painted.items()
                        if tid == track["track_id"] and abs(start - loco["start_m"]) < 2
                    ),
                    None,
                )
                if plate is not None and loco.get("number") != plate:
                    missing.append(
                        f"{loco['loco_id']} on {track['track_id']}: {loco.get('number')} for {plate}"
                    )
        return missing if painted else ["nothing standing in view yet"]

    wait_until(lambda: not unnamed(), 150, "every standing locomotive named", interval=2.0)


@needs_chromium
def test_the_map_draws_the_locomotives_and_follows_a_move(
    demo: RunningDemo, facility: Facility, tmp_path: Path
) -> None:
    with browser_page() as page:
        page.goto(f"{demo.url}/#key={demo.viewer_key}")
        wait_until(
            lambda: (
                page.locator("g.loco").count() > 0
                and page.locator("g.loco").count()
                == sum(len(t["locos"]) for t in demo.get("/api/state")["tracks"])
            ),
            120,
            "the map to draw the locomotives the API holds",
            interval=0.5,
        )
        assert "live" in (page.locator("#link").text_content() or "")

        def starts(track: str) -> list[float]:
            return sorted(
                float(g.get_attribute("data-start") or 0)
                for g in page.locator(f'g.loco[data-track="{track}"]').all()
            )

        move_s, track = _next_move(facility, demo.sim_seconds(), TRACKS)
        move_wall = demo.epoch.timestamp() + move_s / demo.speed
        assert move_wall - time.time() < 150, "the scenario's next move is too far off for this test"
        before = starts(track)

        def moved() -> bool:
            now = starts(track)
            return len(now) != len(before) or any(abs(a - b) > 2.0 for a, b in zip(now, before, strict=True))

        wait_until(moved, 200, f"the map to show the move on {track}", interval=0.5)
        assert time.time() >= move_wall - 1.0, "the map changed before the simulator moved anything"
        page.locator("g.loco").first.click()
        wait_until(lambda: page.locator("#details").is_visible(), 10, "the details panel")
        wait_until(lambda: page.locator("#loco-history li").count() > 0, 10, "the locomotive's history")
        shot = tmp_path / "map.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("DEPOTWATCH_UPDATE_SCREENSHOT"):
        shutil.copy(shot, SCREENSHOT)
