"""The FastAPI application; its lifespan starts and stops the cloud service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from cloud.api.routes import commands, events, flows, health, layout, live, locomotives, state, thumbnails
from cloud.service import CloudService

STATIC = Path(__file__).with_name("static")


def create_app(service: CloudService) -> FastAPI:
    """The API over a service; the service runs while the app does."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="depotwatch",
        version="0.1.0",
        lifespan=lifespan,
        description="Live locomotive positions in a repair depot.",
    )
    app.state.service = service
    for module in (state, locomotives, events, flows, health, commands, layout, live, thumbnails):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def facility_map() -> FileResponse:
        """The live facility map (it asks for an API key; data comes from the API with it)."""
        return FileResponse(STATIC / "index.html")

    return app
