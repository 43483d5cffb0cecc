"""The FastAPI application; its lifespan starts and stops the cloud service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import exc as sa_exc

from cloud.api.deadline import Deadline
from cloud.api.routes import (
    calibration,
    commands,
    events,
    flows,
    health,
    layout,
    live,
    locomotives,
    reports,
    snapshots,
    state,
    thumbnails,
    webhooks,
)
from cloud.db.failures import reason
from cloud.service import CloudService
from shared.calibration import RAIL_OFFSET_M

STATIC = Path(__file__).with_name("static")
# A request that has not begun its answer by then gets a 503 (longer than the database's statement
# timeout would be pointless; shorter would cut the slowest legitimate query, a long flow comparison).
REQUEST_DEADLINE_S = 20.0
# What a database that is away raises: a 503 with the reason, never a 500.
DATABASE_AWAY = (
    sa_exc.OperationalError,
    sa_exc.TimeoutError,
    sa_exc.InterfaceError,
    psycopg.OperationalError,
)


def create_app(service: CloudService) -> FastAPI:
    """The API over a service; the service runs while the app does."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPIOffline(
        title="depotwatch",
        version="0.1.0",
        lifespan=lifespan,
        description="Live locomotive positions in a repair depot.",
        favicon_url="/favicon.ico",
    )
    app.state.service = service
    app.add_middleware(Deadline, seconds=REQUEST_DEADLINE_S)

    async def database_away(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"the database is not reachable right now: {reason(exc)}"}, 503)

    for error in DATABASE_AWAY:
        app.add_exception_handler(error, database_away)
    for module in (
        state,
        locomotives,
        events,
        flows,
        health,
        commands,
        layout,
        live,
        thumbnails,
        calibration,
        snapshots,
        webhooks,
        reports,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def facility_map() -> FileResponse:
        """The live facility map (it asks for an API key; data comes from the API with it)."""
        return FileResponse(STATIC / "index.html")

    @app.get("/calibrate", include_in_schema=False)
    def calibration_workbench() -> HTMLResponse:
        """The calibration workbench (it asks for an admin key), told the rail offset its points use."""
        page = (STATIC / "calibrate.html").read_text()
        return HTMLResponse(page.replace("{{RAIL_OFFSET_M}}", repr(RAIL_OFFSET_M)))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        """The icon browsers ask for at this path whatever the page says."""
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    return app
