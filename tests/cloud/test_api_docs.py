"""The API docs and the map's icon work on a depot network without internet: every asset is served by
the service itself (a real browser with every request off this host refused)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Page, Route

from shared.layout import Facility
from tests.browser import browser_page, needs_chromium
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory
from tests.waiting import wait_until

pytestmark = needs_chromium
# ReDoc's "API docs by Redocly" badge, hard-coded in its bundle: refused here like everything off this
# host, and the page works without it (a badge, not an asset of the docs).
BADGE = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def server(database_factory: DatabaseFactory, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database_factory(), mqtt_url, facility)
    yield s
    s.stop()


@contextmanager
def _offline_page(server: Server, path: str, refused: list[str]) -> Iterator[Page]:
    with browser_page() as page:
        local = f"http://127.0.0.1:{server.port}/"

        def only_local(route: Route) -> None:
            url = route.request.url
            if url.startswith((local, "data:")):
                route.continue_()
            else:
                refused.append(url)
                route.abort()

        page.route("**/*", only_local)
        page.goto(local + path.lstrip("/"))
        yield page


def test_swagger_ui_shows_every_operation_without_internet(server: Server) -> None:
    refused: list[str] = []
    with _offline_page(server, "/docs", refused) as page:
        wait_until(lambda: page.locator(".opblock").count() > 0, 20, "Swagger UI to list the operations")
        shown = {text.strip() for text in page.locator(".opblock-summary-path").all_inner_texts()}
        icon = page.evaluate("document.querySelector('link[rel*=icon]').href")
    assert not refused, f"the docs asked for assets off this host: {refused}"
    assert {"/api/state", "/api/locomotives", "/api/nodes/{node_id}/commands"} <= shown
    assert icon.endswith("/favicon.ico")


def test_redoc_renders_without_internet(server: Server) -> None:
    refused: list[str] = []
    with _offline_page(server, "/redoc", refused) as page:
        wait_until(lambda: page.locator("h1").count() > 0, 20, "ReDoc to render")
        title = page.locator("h1").first.inner_text()
        operations = page.locator("[data-section-id^='tag/'], [data-section-id^='operation/']").count()
    assert set(refused) <= {BADGE}, f"ReDoc asked for assets off this host: {refused}"
    assert title.startswith("depotwatch") and operations > 5


def test_the_favicon_is_served(server: Server) -> None:
    status, body = server.call("/favicon.ico")
    assert status == 200 and b"<svg" in body
