"""The calibration workbench (/calibrate) in a real headless Chromium over the real app, a real broker
and SQLite. A simulated camera's snapshot reaches the cloud as its node sends it; six of the
simulator's true rail marks are clicked on it (one zoomed in on, one dragged into place, a stray click
undone), given their metres and rails, and saved: the saved calibration maps every metre of the view
within 3 px of the simulator's projection and back within 5 cm. Points on one line, too few, and a
mark a metre off are refused in the page with the loader's reasons (the last named, with its
residual), and Save saves nothing.

The cloud's layout starts from an earlier survey 15 px off, so only a saved new survey passes.
Screenshots go to the temporary directory: calibrate-workbench.png (1400 px wide, the fit accepted,
its overlay drawn; docs/img/calibrate_workbench.png is one) and calibrate-workbench-800-outlier.png
(800 px, a mark a metre off). Look at them after a change to the page."""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import yaml

from cloud.auth import Role, create_key
from shared.calibration import RAIL_OFFSET_M, TrackCalibration
from shared.codec import encode
from shared.layout import Camera, load_facility
from shared.messages import CommandRequest, RequestSnapshot, SetCalibration, Snapshot, SnapshotMeta
from shared.mqtt import BrokerConfig, MqttConnection
from shared.topics import Topic, TopicKind
from sim.scenario import Scenario
from sim.source import SimCamera, SimUrl
from sim.world import World
from tests.browser import browser_page, needs_chromium
from tests.cloud.servers import Server
from tests.conftest import EXAMPLE_LAYOUT, DatabaseFactory
from tests.waiting import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCREENSHOT = Path(tempfile.gettempdir()) / "calibrate-workbench.png"
CAMERA = "T2-C3"
NODE = "edge-bay2"
# Where the marks are painted: three metres across the camera's view, both rails at each.
MARK_METRES = (27.0, 32.0, 37.0)
EARLIER_SURVEY_PX = -15.0  # the layout's survey of the camera, this far left of the truth
# Simulation seconds of the first snapshot (a locomotive over the marks) and the fresh one (none).
SNAPSHOT_T = (3600.0, 8000.0)
TOLERANCE_PX, TOLERANCE_M = 3.0, 0.05

# What the page shows, read in one go.
SHOWN = """() => {
  const text = (id) => document.getElementById(id).textContent;
  const verdict = document.getElementById("verdict");
  return {
    state: verdict.dataset.state, fitted: Number(verdict.dataset.points || 0), verdict: text("verdict"),
    problems: [...document.querySelectorAll("#problems li")].map((li) => li.textContent),
    outlier_note: text("outlier-note"), mounting: text("mounting"),
    warnings: [...document.querySelectorAll("#mounting-warnings li")].map((li) => li.textContent),
    rows: [...document.querySelectorAll('[data-testid="point-row"]')].map((tr) => ({
      outlier: tr.classList.contains("outlier"), px: tr.querySelector(".px").textContent,
      cm: tr.querySelector(".cm").textContent, left_out: tr.querySelector(".left-out").textContent,
    })),
    save: text("save-result"), saved: document.getElementById("save-result").dataset.state || "",
    sideways: document.documentElement.scrollWidth - innerWidth,
    strip: !document.getElementById("strip").hidden, strip_note: text("strip-note"),
  };
}"""
# The canvas's pixels around an image pixel, as the page draws it now (RGBA, 3×3).
CANVAS_AT = """([u, v]) => {
  const canvas = document.getElementById("picture"), box = canvas.getBoundingClientRect();
  const [x, y] = workbench.imageToClient(u, v), k = canvas.width / box.width;
  const at = [Math.round((x - box.left) * k) - 1, Math.round((y - box.top) * k) - 1];
  return [...canvas.getContext("2d").getImageData(at[0], at[1], 3, 3).data];
}"""


@dataclass(frozen=True)
class Mark:
    """A painted rail-head mark and where the simulator's camera shows it."""

    track_m: float
    rail: str
    pixel: tuple[float, float]


@dataclass
class Bench:
    """The cloud, its layout file, a node answering commands by hand, and the simulated camera."""

    server: Server
    layout: Path
    admin: str
    node: MqttConnection
    commands: list[CommandRequest]
    camera: SimCamera

    def project(self, track_m: float, offset_m: float) -> tuple[float, float]:
        """The simulator's true pixel of a floor point (its renderer's camera)."""
        uv, _ = self.camera.renderer.camera.project(np.array([[track_m, offset_m, 0.0]]))
        return float(uv[0, 0]), float(uv[0, 1])

    def marks(self) -> list[Mark]:
        """Each mark on both rails, near to far."""
        return [
            Mark(m, rail, self.project(m, RAIL_OFFSET_M if rail == "left" else -RAIL_OFFSET_M))
            for m in MARK_METRES
            for rail in ("right", "left")
        ]

    def send_snapshot(self, t: float, requested_by: uuid.UUID | None = None) -> None:
        """Publish the camera's frame at simulation second t as its node does."""
        image = self.camera.frame_at(t).image
        assert image is not None
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        assert ok
        camera = self.server.service.facility.cameras[CAMERA]
        meta = SnapshotMeta(
            snapshot_id=uuid.uuid4(),
            node_id=NODE,
            camera_id=CAMERA,
            captured_at=datetime.now(UTC),
            width=image.shape[1],
            height=image.shape[0],
            calibration_version=camera.calibration_version,
            requested_by=requested_by,
        )
        topic = Topic(TopicKind.SNAPSHOT, self.server.service.facility.site, NODE, camera=CAMERA)
        assert self.node.publish(str(topic), encode(Snapshot(meta=meta, jpeg=jpeg.tobytes()))) is not None


@pytest.fixture(scope="module")
def bench(
    database_factory: DatabaseFactory, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bench]:
    layout = tmp_path_factory.mktemp("calibrate") / "facility.yaml"
    document = yaml.safe_load(EXAMPLE_LAYOUT.read_text())
    for point in document["cameras"][CAMERA]["calibration"]["points"]:
        point["image"][0] += EARLIER_SURVEY_PX
    layout.write_text(yaml.safe_dump(document, sort_keys=False))
    truth = load_facility(EXAMPLE_LAYOUT)  # the depot as the simulator renders it
    camera = SimCamera(truth, World(truth, Scenario(seed=3)), SimUrl(camera_id=CAMERA, realtime=False))
    server = Server(database_factory(), mqtt_url, load_facility(layout), layout=layout)
    commands: list[CommandRequest] = []
    node = MqttConnection(BrokerConfig(url=mqtt_url), f"{NODE}-{uuid.uuid4().hex[:6]}")
    node.subscribe(
        str(Topic(TopicKind.COMMAND, truth.site, NODE)),
        lambda _t, payload: commands.append(CommandRequest.model_validate_json(payload)),
    )
    node.start()
    try:
        assert node.wait_connected(5) and node.wait_subscribed(5)
        admin = create_key(server.service.engine, Role.ADMIN)
        found = Bench(server, layout, admin, node, commands, camera)
        found.send_snapshot(SNAPSHOT_T[0])
        wait_until(
            lambda: server.call(f"/api/cameras/{CAMERA}/snapshot/meta", admin)[0] == 200,
            10,
            "the camera's snapshot in the cloud",
        )
        yield found
    finally:
        node.stop()
        server.stop()


def _shown(page: Page, fitted: int | None = None) -> dict[str, Any]:
    """What the page shows once the fit of its points (`fitted` of them) has come back."""

    def settled() -> dict[str, Any] | None:
        shown: dict[str, Any] = page.evaluate(SHOWN)
        done = shown["state"] != "fitting" and (fitted is None or shown["fitted"] == fitted)
        return shown if done else None

    found: dict[str, Any] = wait_until(settled, 10, "the page's fit", interval=0.05)
    return found


def _rows(page: Page) -> Any:
    return page.locator('[data-testid="point-row"]')


def _click(page: Page, pixel: tuple[float, float]) -> None:
    x, y = page.evaluate("([u, v]) => workbench.imageToClient(u, v)", list(pixel))
    page.mouse.click(x, y)


def _saved_answer(page: Page) -> dict[str, Any]:
    page.locator("#save").click()
    assert page.evaluate(SHOWN)["saved"] != "", "Save was not clicked"
    shown: dict[str, Any] = wait_until(
        lambda: (s := page.evaluate(SHOWN))["saved"] in ("saved", "refused") and s, 10, "Save's answer"
    )
    return shown


def _worst(calibration: TrackCalibration, bench: Bench, view: tuple[float, float]) -> tuple[float, float]:
    """Over every metre of `view` on the centreline and both rails: the worst distance from the
    calibration's pixel to the simulator's, and from the calibration's track point for the
    simulator's pixel to the true one."""
    metres = np.arange(math.ceil(view[0]), view[1] + 1e-9, 1.0)
    worst_px = worst_m = 0.0
    for offset in (0.0, RAIL_OFFSET_M, -RAIL_OFFSET_M):
        track = np.stack([metres, np.full_like(metres, offset)], axis=1)
        truth = np.array([bench.project(s, o) for s, o in track])
        worst_px = max(worst_px, float(np.linalg.norm(calibration.to_image(track) - truth, axis=1).max()))
        worst_m = max(worst_m, float(np.linalg.norm(calibration.to_track(truth) - track, axis=1).max()))
    return worst_px, worst_m


def _view(camera: Camera) -> tuple[float, float]:
    return camera.view.start_m, camera.view.end_m


@needs_chromium
def test_bad_points_are_refused_with_the_loaders_reasons_and_nothing_is_saved(bench: Bench) -> None:
    before = bench.layout.read_text()
    with browser_page(800, 700) as page:  # the narrowest width the page is made for
        page.goto(f"http://127.0.0.1:{bench.server.port}/calibrate?camera={CAMERA}")
        page.locator("#key").fill("not-a-key")
        page.locator("#use-key").click()
        wait_until(lambda: page.locator("#key-error").text_content(), 10, "the key refused")
        assert page.locator("#key-error").text_content() == "That key is not valid here."
        assert page.locator("#bench").is_hidden()
        page.locator("#key").fill(bench.admin)
        page.locator("#use-key").click()
        page.locator("#load-points").click()  # the layout's survey: six points, accepted
        shown = _shown(page, 6)
        assert shown["state"] == "accepted" and shown["sideways"] <= 0, shown

        # Every point on one rail: the points lie on one line.
        for i in (0, 2, 4):
            _rows(page).nth(i).locator(".rail").select_option("left")
        shown = _shown(page, 6)
        assert shown["state"] == "refused" and any("lie on one line" in p for p in shown["problems"])
        saved = _saved_answer(page)
        assert saved["saved"] == "refused" and "lie on one line" in saved["save"]
        for _ in range(3):
            page.keyboard.press("Control+z")  # focus on Save: the page's undo
        assert _shown(page, 6)["state"] == "accepted"

        # Three points are too few.
        for i in (5, 4, 3):
            _rows(page).nth(i).locator('[data-testid="point-delete"]').click()
        shown = _shown(page, 3)
        assert shown["state"] == "refused" and any("at least 4" in p for p in shown["problems"])
        saved = _saved_answer(page)
        assert saved["saved"] == "refused" and "at least 4" in saved["save"]
        for _ in range(3):
            page.locator("#undo").click()
        assert _shown(page, 6)["state"] == "accepted"

        # One mark a metre off: refused, it is named with its residual, and Save saves nothing.
        metres = _rows(page).nth(4).locator(".metres")
        metres.fill(str(float(metres.input_value()) + 1.0))
        shown = _shown(page, 6)
        assert shown["state"] == "refused"
        assert any(p.startswith("points disagree with one another") for p in shown["problems"])
        assert [r["outlier"] for r in shown["rows"]] == [False] * 4 + [True, False]
        assert float(shown["rows"][4]["left_out"]) > 20
        assert shown["outlier_note"].startswith("point 5 disagrees with the others: fitted without it, the")
        assert shown["outlier_note"].endswith(f"{shown['rows'][4]['left_out']} px; re-survey it")
        assert not shown["strip"] and shown["strip_note"] == "The strip shows once the fit is accepted."
        saved = _saved_answer(page)
        assert saved["saved"] == "refused" and "points disagree with one another" in saved["save"]
        assert "(point 5 disagrees with the others)" in saved["save"]
        # Last: a full-page screenshot resizes the window for a moment, and a click then can miss.
        page.screenshot(path=str(SCREENSHOT.with_name("calibrate-workbench-800-outlier.png")), full_page=True)
    assert bench.layout.read_text() == before
    assert not [c for c in bench.commands if isinstance(c.command, SetCalibration)]


@needs_chromium
def test_six_true_marks_clicked_and_saved_map_every_metre_as_the_simulator_does(bench: Bench) -> None:
    earlier = load_facility(bench.layout).cameras[CAMERA]
    # The check below tells the earlier survey from a true one.
    assert _worst(earlier.calibration.model, bench, _view(earlier))[0] > 4 * TOLERANCE_PX
    base = f"http://127.0.0.1:{bench.server.port}"
    requested: list[str] = []
    with browser_page() as page:
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{base}/calibrate?camera={CAMERA}#key={bench.admin}")
        meta = page.locator("#snapshot-meta")
        wait_until(lambda: (meta.text_content() or "").startswith("snapshot of"), 10, "the snapshot shown")
        first = meta.get_attribute("data-captured-at")

        # A fresh snapshot: asked of the camera's node, shown once it comes.
        page.locator("#fresh-snapshot").click()
        [ask] = wait_until(
            lambda: [c for c in bench.commands if isinstance(c.command, RequestSnapshot)], 10, "the ask"
        )
        assert ask.command == RequestSnapshot(camera_id=CAMERA)
        bench.send_snapshot(SNAPSHOT_T[1], requested_by=ask.command_id)
        wait_until(
            lambda: meta.get_attribute("data-captured-at") not in (None, "", first), 15, "the fresh one"
        )

        marks = bench.marks()
        # The first mark zoomed in on with the wheel: it stays under the pointer.
        zoom = page.evaluate("() => workbench.zoom()")
        x, y = page.evaluate("([u, v]) => workbench.imageToClient(u, v)", list(marks[0].pixel))
        page.mouse.move(x, y)
        page.mouse.wheel(0, -600)
        wait_until(lambda: page.evaluate("() => workbench.zoom()") > 2 * zoom, 5, "the zoom")
        _click(page, marks[0].pixel)
        page.locator("#zoom-fit").click()
        # The third one clicked beside the mark and dragged onto it; a stray click undone.
        for i, mark in enumerate(marks[1:], start=1):
            _click(page, (mark.pixel[0] + 25, mark.pixel[1] + 12) if i == 2 else mark.pixel)
        _click(page, (640.0, 60.0))
        assert _rows(page).count() == 7
        page.keyboard.press("Control+z")
        assert _rows(page).count() == 6
        x0, y0 = page.evaluate(
            "([u, v]) => workbench.imageToClient(u, v)", [marks[2].pixel[0] + 25, marks[2].pixel[1] + 12]
        )
        x1, y1 = page.evaluate("([u, v]) => workbench.imageToClient(u, v)", list(marks[2].pixel))
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=8)
        page.mouse.up()

        rail_at = bench.project(34.5, RAIL_OFFSET_M)  # between ticks, on the left rail
        unfitted = page.evaluate(CANVAS_AT, list(rail_at))
        for i, mark in enumerate(marks):
            _rows(page).nth(i).locator(".metres").fill(f"{mark.track_m:g}")
            _rows(page).nth(i).locator(".rail").select_option(mark.rail)
        shown = _shown(page, 6)
        assert shown["state"] == "accepted", shown
        assert shown["problems"] == [] and shown["outlier_note"] == ""
        assert shown["sideways"] <= 0, "the page scrolls sideways"
        assert max(float(r["px"]) for r in shown["rows"]) < 1.0
        assert max(float(r["cm"]) for r in shown["rows"]) < 2.0
        # The mounting the fit implies: the example depot's, inside the LPE's envelope.
        assert (
            "8 m above the rail head" in shown["mounting"] and "6 m, right of the track" in shown["mounting"]
        )
        assert "LPE envelopeinside" in shown["mounting"] and shown["warnings"] == []
        # The fitted left rail drawn over the snapshot in the overlay's amber.
        drawn = page.evaluate(CANVAS_AT, list(rail_at))
        amber = [
            (r, g, b)
            for r, g, b in zip(drawn[0::4], drawn[1::4], drawn[2::4], strict=True)
            if r > 200 and 150 < g < 230 and b < 90
        ]
        assert amber, f"no rail drawn at {rail_at}: {drawn}"
        assert not any(
            r > 200 and 150 < g < 230 and b < 90
            for r, g, b in zip(unfitted[0::4], unfitted[1::4], unfitted[2::4], strict=True)
        )
        strip_size = (
            "() => { const s = document.getElementById('strip'); return [s.naturalWidth, s.naturalHeight]; }"
        )
        wait_until(
            lambda: page.locator("#strip").is_visible() and page.evaluate(strip_size)[0], 10, "the strip"
        )
        assert page.evaluate(strip_size) == [1024, 256]
        saved = _saved_answer(page)
        page.screenshot(path=str(SCREENSHOT), full_page=True)  # last, as above
    assert saved["saved"] == "saved", saved
    [sent] = [c for c in bench.commands if isinstance(c.command, SetCalibration)]
    assert f"sent to {NODE} as command {sent.command_id}" in saved["save"]
    assert all(url.startswith((base, "blob:", "data:")) for url in requested), "only the app's own assets"

    written = load_facility(bench.layout).cameras[CAMERA]
    clicked = np.array([p.image for p in written.calibration.points])
    assert np.abs(clicked - np.array([m.pixel for m in marks])).max() < 0.6
    assert [(p.track_m, p.offset_m) for p in written.calibration.points] == [
        (m.track_m, RAIL_OFFSET_M if m.rail == "left" else -RAIL_OFFSET_M) for m in marks
    ]
    worst_px, worst_m = _worst(written.calibration.model, bench, _view(written))
    assert worst_px < TOLERANCE_PX and worst_m < TOLERANCE_M, (worst_px, worst_m)
    truth = load_facility(EXAMPLE_LAYOUT).cameras[CAMERA]
    assert _view(written) == pytest.approx(_view(truth), abs=0.2)
    expected = SetCalibration(camera_id=CAMERA, calibration=written.calibration, view=written.view)
    assert sent.command.model_dump() == expected.model_dump()
    previous = load_facility(bench.layout.with_name("facility.yaml.previous")).cameras[CAMERA]
    assert previous.calibration.points == earlier.calibration.points
