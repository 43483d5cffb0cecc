"""The live facility map is readable from 800 px to 2560 px wide and on a phone in landscape: measured
in a real headless Chromium over the real app, fed by real detections and recognitions over MQTT.

Screenshots of each size go to map-<size>.png and map-<size>-details.png in the temporary directory
(/tmp): look at them after a change to the map."""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cloud.auth import Role, create_key
from cloud.config import FlowConfig
from cloud.fse import FseSettings
from shared.codec import encode
from shared.layout import Facility
from shared.messages import LocoExtent, TrackSpan
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from tests import factories
from tests.browser import browser_page, needs_chromium
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory
from tests.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOTS = Path(tempfile.gettempdir())
# Smallest text, in CSS pixels, that a person reads on the map without zooming.
MIN_TEXT_PX = 10.0
# The camera that never reports: its stretch of T4 is unknown in the state.
SILENT_CAMERA = "T4-C4"


@dataclass(frozen=True)
class Placed:
    """A locomotive the detections show, and what its thumbnails read."""

    track: str
    start_m: float
    end_m: float
    series: str | None = None
    number: str | None = None


SCENE = (
    Placed("T1", 2.0, 19.0, "TEM2", "TEM2-2698"),
    Placed("T1", 28.0, 45.0, "CHME3", "CHME3-5123"),
    Placed("T2", 3.0, 39.0, "2TE116", "2TE116-1204"),
    Placed("T2", 44.0, 60.0, "TEM2", "TEM2-7410"),  # runs out of the cameras' sight at 51.3 m
    Placed("T3", 5.0, 27.0, "TE33A", "TE33A-2251"),
    # Two short runs side by side: their labels fit neither locomotive nor each other's place. The
    # first is read as T1's CHME3: one number on two locomotives, an identity conflict marked on both.
    Placed("T3", 30.0, 36.0, "CHME3", "CHME3-5123"),
    Placed("T3", 37.0, 43.0, "2TE25A", "2TE25A-017"),
    Placed("T4", 4.0, 21.0, "2M62"),  # series settled, number not read yet
    Placed("T4", 24.0, 34.0),  # nothing recognised yet
)
VIEWPORTS = {  # name: width, height, phone
    "800": (800, 600, False),
    "1920": (1920, 1080, False),
    "2560": (2560, 1440, False),
    "phone": (844, 390, True),
}


@pytest.fixture(scope="module")
def depot(
    database_factory: DatabaseFactory, mqtt_url: str, facility: Facility
) -> Iterator[tuple[Server, str]]:
    """The cloud holding SCENE, recognised; the state holds still for minutes (max_age_s 600)."""
    server = Server(
        database_factory(), mqtt_url, facility, flows={"prod": FlowConfig(fse=FseSettings(max_age_s=600))}
    )
    try:
        viewer = create_key(server.service.engine, Role.VIEWER)
        link = MqttConnection(BrokerConfig(url=mqtt_url), f"edge-{uuid.uuid4().hex[:6]}")
        link.start()
        assert link.wait_connected(5)
        try:
            _detect(link, facility)
            wait_until(
                lambda: len(_locos(server, viewer)) == len(SCENE), 15, "the scene's locomotives in the state"
            )
            _recognise(link, facility)
            wait_until(lambda: _identified(server, viewer), 15, "the scene's series and numbers")
        finally:
            link.stop()
        yield server, viewer
    finally:
        server.stop()


def _detect(link: MqttConnection, facility: Facility) -> None:
    now = datetime.now(UTC)
    seq = dict.fromkeys(facility.nodes, 0)  # a node numbers its detections across its cameras
    for k in range(3):
        for cid, camera in facility.cameras.items():
            if cid == SILENT_CAMERA:
                continue
            view = camera.view
            extents = [
                LocoExtent(
                    start_m=max(p.start_m, view.start_m),
                    end_m=min(p.end_m, view.end_m),
                    start_beyond_view=p.start_m < view.start_m,
                    end_beyond_view=p.end_m > view.end_m,
                    confidence=0.9,
                )
                for p in SCENE
                if p.track == camera.track and min(p.end_m, view.end_m) - max(p.start_m, view.start_m) > 0.5
            ]
            seq[camera.node] += 1
            d = factories.detection_for(
                facility,
                cid,
                captured_at=now + timedelta(milliseconds=200 * k),
                seq=seq[camera.node],
                extents=extents,
            )
            topic = Topic(TopicKind.DETECTION, facility.site, camera.node, flow="prod", camera=cid)
            assert link.publish(str(topic), encode(d)) is not None


def _recognise(link: MqttConnection, facility: Facility) -> None:
    for p in SCENE:
        if p.series is None:
            continue
        middle = (p.start_m + min(p.end_m, 50.0)) / 2
        cid, camera = next(
            (cid, c)
            for cid, c in facility.cameras.items()
            if c.track == p.track and c.view.start_m <= middle <= c.view.end_m
        )
        for _ in range(2):  # two confident reads settle a value
            recognition = factories.recognition(
                camera_id=cid,
                node_id=camera.node,
                track_id=p.track,
                captured_at=datetime.now(UTC),
                span=TrackSpan(start_m=middle - 2.0, end_m=middle + 2.0),
                series=p.series,
                plate=p.number,
                plate_raw=p.number or "",
                plate_confidence=0.95 if p.number else 0.0,
            )
            topic = Topic(TopicKind.RECOGNITION, facility.site, camera.node, flow="prod", camera=cid)
            assert link.publish(str(topic), encode(recognition)) is not None


def _locos(server: Server, key: str) -> list[dict[str, Any]]:
    return [loco for t in server.call("/api/state", key)[1]["tracks"] for loco in t["locos"]]


def _identified(server: Server, key: str) -> bool:
    shown = Counter((loco["model"], loco["number"]) for loco in _locos(server, key))
    return shown == Counter((p.series, p.number) for p in SCENE)


def _uncovered(facility: Facility) -> dict[str, list[tuple[float, float]]]:
    """Per track, the stretches no camera of the layout sees (worked out here, not by the map)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for tid, track in facility.tracks.items():
        views = sorted((c.view.start_m, c.view.end_m) for c in facility.cameras_on_track(tid).values())
        gaps, reached = [], 0.0
        for lo, hi in views:
            if lo > reached:
                gaps.append((reached, lo))
            reached = max(reached, hi)
        if reached < track.length_m:
            gaps.append((reached, track.length_m))
        out[tid] = gaps
    return out


@contextmanager
def _map(server: Server, key: str, viewport: str) -> Iterator[Page]:
    """The map in a headless Chromium of that size, once it drew the scene's locomotives."""
    width, height, phone = VIEWPORTS[viewport]
    with browser_page(width, height) as page:
        if phone:  # a phone's browser: touch, three device pixels to a CSS pixel
            browser = page.context.browser
            assert browser is not None
            context = browser.new_context(
                viewport={"width": width, "height": height},
                device_scale_factor=3,
                is_mobile=True,
                has_touch=True,
            )
            page = context.new_page()
        page.goto(f"http://127.0.0.1:{server.port}/#key={key}")
        wait_until(lambda: page.evaluate(DRAWN) == len(SCENE), 20, "the map to draw the scene", interval=0.2)
        yield page


# A locomotive's label: its own, or the text in its group (where a map draws it there).
LABEL = """(g) => document.querySelector(`#map text.loco-label[data-loco-id="${g.dataset.locoId}"]`)
  || g.querySelector("text")"""
# How many locomotives are drawn with a label and a hover text.
DRAWN = """() => [...document.querySelectorAll("#map g.loco")]
  .filter((g) => g.querySelector("title")?.textContent && (LABEL)(g)?.textContent).length""".replace(
    "LABEL", LABEL
)

# Everything the assertions look at, in CSS pixels of the page.
MEASURE = """() => {
  const svg = document.getElementById("map");
  const box = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const shown = (e) => { const s = getComputedStyle(e), b = e.getBoundingClientRect();
    return s.display !== "none" && s.visibility !== "hidden" && b.width > 0 && b.height > 0; };
  const scale = svg.getScreenCTM().a;
  const html = [...document.querySelectorAll("header h1, header span, header time, #legend, #events li")];
  return {
    window: [innerWidth, innerHeight, document.documentElement.scrollWidth],
    svg: box(svg), plan: box(document.getElementById("plan")), aside: box(document.querySelector("aside")),
    metre_px: scale,
    texts: [...svg.querySelectorAll("text")].map((t) => ({
      text: t.textContent, shown: shown(t), box: box(t), px: parseFloat(getComputedStyle(t).fontSize) * scale,
    })),
    html_px: html.filter(shown).map((e) => parseFloat(getComputedStyle(e).fontSize)),
    locos: [...svg.querySelectorAll("g.loco")].map((g) => {
      const label = (LABEL)(g);
      const body = g.querySelector(".body") || g.querySelector("path");
      return { id: g.dataset.locoId, title: g.querySelector("title")?.textContent || "",
        conflict: g.classList.contains("conflict"),
        label: label?.textContent || "", placement: label?.dataset.placement || "",
        label_box: label ? box(label) : null, body: box(body) };
    }),
    spans: [...svg.querySelectorAll(".unknown-span")].map((p) => ({
      uncovered: p.classList.contains("uncovered"), track: p.dataset.track || "",
      start: parseFloat(p.dataset.start), end: parseFloat(p.dataset.end),
      paint: getComputedStyle(p).fill + " " + getComputedStyle(p).stroke, box: box(p),
      why: p.querySelector("title")?.textContent || "",
    })),
  };
}""".replace("LABEL", LABEL)
Box = list[float]
TOLERANCE_PX = 0.5


def _overlap(a: Box, b: Box) -> bool:
    return (
        min(a[2], b[2]) - max(a[0], b[0]) > TOLERANCE_PX and min(a[3], b[3]) - max(a[1], b[1]) > TOLERANCE_PX
    )


def _flat(spans: Iterable[Sequence[float]]) -> list[float]:
    """Spans in order, as one list of metres (pytest.approx compares flat lists)."""
    return [metre for span in sorted(tuple(span) for span in spans) for metre in span]


def _within(inner: Box, outer: Box) -> bool:
    return (
        inner[0] >= outer[0] - TOLERANCE_PX
        and inner[1] >= outer[1] - TOLERANCE_PX
        and inner[2] <= outer[2] + TOLERANCE_PX
        and inner[3] <= outer[3] + TOLERANCE_PX
    )


@needs_chromium
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_map_is_readable_at_every_width(
    depot: tuple[Server, str], facility: Facility, viewport: str
) -> None:
    server, key = depot
    state = server.call("/api/state", key)[1]
    api = {loco["loco_id"]: loco for t in state["tracks"] for loco in t["locos"]}
    with _map(server, key, viewport) as page:
        page.screenshot(path=str(SCREENSHOTS / f"map-{viewport}.png"), full_page=True)
        m = page.evaluate(MEASURE)
        # A click on the short locomotive (its label beside it, not over it) names it in the details.
        [short] = [loco for loco in api.values() if loco["number"] == "TEM2-7410"]
        page.locator(f'g.loco[data-loco-id="{short["loco_id"]}"]').click()
        wait_until(lambda: page.locator("#details").is_visible(), 5, "the details of the locomotive clicked")
        details_title = page.locator("#loco-title").text_content()
        page.screenshot(path=str(SCREENSHOTS / f"map-{viewport}-details.png"), full_page=True)
    width, height, scroll_width = m["window"]
    svg, plan, aside = m["svg"], m["plan"], m["aside"]

    # The plan scales to the window: no sideways scrolling, all of it in view at once.
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px window"
    assert svg[2] <= width and svg[3] - svg[1] <= height, f"the plan {svg} does not fit {width}x{height}"
    if width < 1000:
        assert aside[1] >= plan[3] - 1, "at a narrow width the events belong below the plan"
    else:
        assert aside[0] >= plan[2] - 1, "at a wide width the events belong beside the plan"

    # Every text is drawn, large enough to read, inside the plan and clear of every other.
    texts = m["texts"]
    assert [t["text"] for t in texts if not t["shown"]] == []
    small = [(t["text"], round(t["px"], 1)) for t in texts if t["px"] < MIN_TEXT_PX]
    assert small == [], f"text smaller than {MIN_TEXT_PX} px on screen"
    assert min(m["html_px"]) >= MIN_TEXT_PX
    assert [t["text"] for t in texts if not _within(t["box"], svg)] == [], "labels clipped by the plan"
    clashes = [
        (a["text"], b["text"])
        for i, a in enumerate(texts)
        for b in texts[i + 1 :]
        if _overlap(a["box"], b["box"])
    ]
    assert clashes == [], "labels drawn over each other"

    # Each locomotive's label names it once, and sits in it or clear of every locomotive.
    assert sorted(loco["id"] for loco in m["locos"]) == sorted(api)
    bodies = [loco["body"] for loco in m["locos"]]
    for drawn in m["locos"]:
        loco, label = api[drawn["id"]], drawn["label"]
        series, number = loco["model"], loco["number"]
        if number:  # a number is painted with its series (TEM2-2698)
            assert label == number or (number.endswith(label) and len(label) >= 3), label
            assert number in drawn["title"]
        elif series:
            assert series in label and series in drawn["title"], label
        else:
            assert label == loco["loco_id"]
        if series:
            assert label.count(series) <= 1 and drawn["title"].count(series) <= 1, f"series repeated: {label}"
        assert drawn["conflict"] == bool(loco["number_also_on"]), drawn
        for other in loco["number_also_on"]:
            assert f"identity conflict: the number is also on {other}" in drawn["title"]
        assert loco["loco_id"] in drawn["title"]
        if drawn["placement"] == "inside":
            assert _within(drawn["label_box"], drawn["body"]), f"{label} overflows its locomotive"
        else:
            assert drawn["placement"] == "below", drawn
            assert not any(_overlap(drawn["label_box"], body) for body in bodies), (
                f"{label} covers a locomotive"
            )
            box, body = drawn["label_box"], drawn["body"]
            assert box[0] < body[2] and box[2] > body[0], f"{label} is not under its locomotive"

    # Stretches no camera covers are hatched as unknown, with their metres; so are the state's unknown.
    spans = m["spans"]
    for tid, gaps in _uncovered(facility).items():
        drawn_gaps = sorted((s["start"], s["end"]) for s in spans if s["uncovered"] and s["track"] == tid)
        assert _flat(drawn_gaps) == pytest.approx(_flat(gaps), abs=0.01), f"{tid}'s uncovered stretches"
    for tid, track in ((t["track_id"], t) for t in state["tracks"]):
        drawn_unknown = sorted(
            (s["start"], s["end"]) for s in spans if not s["uncovered"] and s["track"] == tid
        )
        assert _flat(drawn_unknown) == pytest.approx(_flat(track["unknown"]), abs=0.01), tid
    assert any(s["track"] == "T4" and not s["uncovered"] for s in spans), f"{SILENT_CAMERA}'s stretch"
    for s in spans:
        assert "url(" in s["paint"] and "hatch" in s["paint"], f"{s} is not hatched"
        # Hovering says why: outside every view, or not seen now.
        reason = "no camera of the layout looks here" if s["uncovered"] else "no camera sees this now"
        assert s["why"].startswith(f"{s['track']} ") and reason in s["why"], s
        drawn_px = s["box"][2] - s["box"][0]
        assert drawn_px == pytest.approx((s["end"] - s["start"]) * m["metre_px"], abs=1.5), s
    assert details_title == f"TEM2-7410 ({short['loco_id']})", "the details name it once"


def test_one_number_settled_on_two_locomotives_is_a_conflict_told_and_shown_on_both(
    depot: tuple[Server, str],
) -> None:
    server, key = depot
    holders = {loco["loco_id"]: loco for loco in _locos(server, key) if loco["number"] == "CHME3-5123"}
    assert len(holders) == 2
    first, second = holders
    assert holders[first]["number_also_on"] == [second] and holders[second]["number_also_on"] == [first]
    others = [loco for loco in _locos(server, key) if loco["loco_id"] not in holders]
    assert all(loco["number_also_on"] == [] for loco in others)
    events = server.call("/api/events?kind=identity_conflict", key)[1]["items"]
    told = [(e["loco_id"], e["detail"]) for e in events if "also settled on" in e["detail"]]
    # Told once, by whichever of the two settled second, naming the other and its track.
    [(loco_id, detail)] = told
    other = second if loco_id == first else first
    assert detail == f"number CHME3-5123 is also settled on {other} ({holders[other]['track_id']})"


# The header's clock, how long ago the state was updated, and that state's time.
HEADER = """() => {
  const clock = document.getElementById("clock"), updated = document.getElementById("updated");
  return [clock?.textContent, updated?.textContent, updated?.getAttribute("datetime")];
}"""


@needs_chromium
def test_the_header_clock_ticks_between_states(depot: tuple[Server, str]) -> None:
    """The clock and the state's age move on with no new state. The clock is this machine's time: a
    tick seen after `before` shows a second between `before` and `after` (however late the browser's
    timer ran on a loaded machine)."""
    server, key = depot
    with _map(server, key, "800") as page:
        before = time.time()
        clock, age, state_at = page.evaluate(HEADER)
        assert clock and re.fullmatch(r"\d{1,2}:\d{2}:\d{2}( [AP]M)?", clock), clock
        assert age and re.fullmatch(r"updated \d+ s ago", age), age
        ticked = wait_until(
            lambda: (now := page.evaluate(HEADER))[0] != clock and now[1] != age and now,
            10,
            "the clock and the state's age to move on",
            interval=0.1,
        )
        after = time.time()
        assert ticked[2] == state_at, "a new state came meanwhile: this proves nothing"
        shown = int(ticked[0].split(":")[2][:2])
        possible = {time.localtime(t).tm_sec for t in range(int(before), int(after) + 1)}
        assert shown in possible, f"the clock shows second {shown}, this machine's were {sorted(possible)}"
