"""The FastAPI application; its lifespan starts and stops the cloud service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloud.api.routes import commands, events, health, layout, locomotives, state
from cloud.service import CloudService


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
    for module in (state, locomotives, events, health, commands, layout):
        app.include_router(module.router)
    return app
