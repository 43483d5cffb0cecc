"""API keys and roles over real HTTP: every route of the app is either public by name or under /api
and needs a key of at least its role; a key is matched whole, not by its prefix; a revoked key is
refused at once, its earlier verification notwithstanding."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterable, Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI

from cloud.auth import PREFIX_LEN, DatabaseUnavailable, Role, create_key, revoke_key
from shared.layout import Facility
from tests.cloud.servers import Server
from tests.conftest import DatabaseFactory

# The least role each route of the app admits; None: public (no key asked). A route missing here, or
# listed here and gone from the app, fails the test: a new route is given its role on purpose.
MINIMUM_ROLE: dict[tuple[str, str], Role | None] = {
    ("GET", "/api/state"): Role.VIEWER,
    ("GET", "/api/tracks"): Role.VIEWER,
    ("GET", "/api/locomotives"): Role.VIEWER,
    ("GET", "/api/locomotives/{loco_id}"): Role.VIEWER,
    ("GET", "/api/locomotives/{loco_id}/history"): Role.VIEWER,
    ("GET", "/api/events"): Role.VIEWER,
    ("GET", "/api/events/stream"): Role.VIEWER,
    ("GET", "/api/live"): Role.VIEWER,
    ("GET", "/api/flows"): Role.VIEWER,
    ("GET", "/api/flows/compare"): Role.VIEWER,
    ("GET", "/api/nodes"): Role.VIEWER,
    ("GET", "/api/cameras"): Role.VIEWER,
    ("GET", "/api/layout"): Role.VIEWER,
    ("GET", "/api/thumbnails/{thumbnail_id}"): Role.VIEWER,
    ("GET", "/api/reports/stations"): Role.VIEWER,
    ("GET", "/api/reports/dwell"): Role.VIEWER,
    ("GET", "/api/dead-letters"): Role.OPERATOR,
    ("GET", "/api/webhooks"): Role.OPERATOR,
    ("POST", "/api/nodes/{node_id}/commands"): Role.OPERATOR,
    ("DELETE", "/api/dead-letters"): Role.ADMIN,
    ("PUT", "/api/layout"): Role.ADMIN,
    ("POST", "/api/cameras/{camera_id}/calibration/fit"): Role.OPERATOR,
    ("PUT", "/api/cameras/{camera_id}/calibration"): Role.ADMIN,
    ("POST", "/api/cameras/{camera_id}/calibration/overlay"): Role.OPERATOR,
    ("POST", "/api/cameras/{camera_id}/calibration/strip"): Role.OPERATOR,
    ("GET", "/api/cameras/{camera_id}/snapshot"): Role.OPERATOR,
    ("GET", "/api/cameras/{camera_id}/snapshot/meta"): Role.OPERATOR,
    ("POST", "/api/cameras/{camera_id}/snapshot"): Role.OPERATOR,
    # Public: the map page and the calibration workbench (each asks for a key itself), health and
    # metrics for probes and Prometheus, the API's own documentation, static assets.
    ("GET", "/"): None,
    ("GET", "/calibrate"): None,
    ("GET", "/favicon.ico"): None,
    ("GET", "/healthz"): None,
    ("GET", "/metrics"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("MOUNT", "/static"): None,
    ("MOUNT", "/static-offline-docs"): None,
}
ORDER = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves (a mount as MOUNT), HEAD left out: it answers as
    GET does. Newer FastAPI keeps included routers as lazy nodes in `app.routes`; its
    `iter_route_contexts` flattens them (older versions list the routes themselves)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", iter)
    routes: Iterable[Any] = flatten(app.routes)
    found = set()
    for route in routes:
        path = route.path
        methods = getattr(route, "methods", None)
        for method in methods - {"HEAD"} if methods else {"MOUNT"}:
            found.add((method, path))
    return sorted(found)


def request(server: Server, method: str, path: str, key: str | None) -> int:
    """The status of a request with no body; a stream is closed once its head has come."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers={"X-API-Key": key} if key else {})
        response = connection.getresponse()
        if not response.getheader("Content-Type", "").startswith("text/event-stream"):
            response.read()
        return response.status
    finally:
        connection.close()


def concrete(path: str) -> str:
    """The path with a value for each parameter (one no resource has: 404 or 422 past the key)."""
    return re.sub(r"\{[^}]+\}", "none-such", path)


def served_app(server: Server) -> FastAPI:
    app = server.server.config.app
    assert isinstance(app, FastAPI)
    return app


@pytest.fixture
def server(database_factory: DatabaseFactory, mqtt_url: str, facility: Facility) -> Iterator[Server]:
    s = Server(database_factory(), mqtt_url, facility)
    yield s
    s.stop()


def test_every_route_has_a_minimum_role_in_this_table(server: Server) -> None:
    routes = set(app_routes(served_app(server)))
    assert routes == set(MINIMUM_ROLE), (
        f"not in the table: {sorted(routes - set(MINIMUM_ROLE))}; "
        f"not in the app: {sorted(set(MINIMUM_ROLE) - routes)}"
    )
    assert [
        route for route, role in MINIMUM_ROLE.items() if role is None and route[1].startswith("/api")
    ] == []


def test_every_api_route_needs_a_whole_valid_key_of_its_role(server: Server) -> None:
    """Without a key, and with one that shares a real admin key's prefix (the part looked up) but not
    the rest: 401 on every /api route, whatever the table says. Each role below the route's least:
    403; that role and those above: past the key check (200, or 404/422 for the made-up request)."""
    engine = server.service.engine
    keys = {role: create_key(engine, role, role.value) for role in ORDER}
    forged = keys[Role.ADMIN][:PREFIX_LEN] + "x" * (len(keys[Role.ADMIN]) - PREFIX_LEN)
    wrong = {}
    for method, path in app_routes(served_app(server)):
        if method == "MOUNT":
            continue
        url, needed = concrete(path), MINIMUM_ROLE.get((method, path), "missing")
        got = {"no key": request(server, method, url, None)}
        if path.startswith("/api"):
            got["forged"] = request(server, method, url, forged)
            ok = got["no key"] == got["forged"] == 401
        else:
            ok = got["no key"] not in (401, 403)
        if isinstance(needed, Role):
            below = ORDER[: ORDER.index(needed)]
            for role in ORDER:
                got[role.value] = request(server, method, url, keys[role])
                ok = ok and (got[role.value] == 403) == (role in below) and got[role.value] != 401
        if not ok or needed == "missing":
            wrong[(method, path)] = (needed.value if isinstance(needed, Role) else str(needed), got)
    assert wrong == {}, "(least role, statuses) of the routes that do not enforce it"


def test_a_revoked_key_is_refused_at_once(server: Server) -> None:
    engine = server.service.engine
    revoked, kept = create_key(engine, Role.ADMIN, "leaver"), create_key(engine, Role.VIEWER, "map")
    assert request(server, "GET", "/api/state", revoked) == 200
    assert request(server, "GET", "/api/state", kept) == 200  # both verified, so both known offline
    assert revoke_key(engine, revoked[:PREFIX_LEN])
    assert request(server, "GET", "/api/state", revoked) == 401  # the next request, no grace
    assert request(server, "GET", "/api/dead-letters", revoked) == 401
    assert request(server, "GET", "/api/state", kept) == 200
    # Nor does the outage fallback remember it: while the database is away it is no longer known.
    keys = server.service.keys
    assert keys.role(kept, database_available=False) is Role.VIEWER
    with pytest.raises(DatabaseUnavailable):
        keys.role(revoked, database_available=False)
    assert not revoke_key(engine, "dw_none-such")
