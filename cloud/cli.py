"""`depotwatch cloud ...`: run the service, manage API keys."""

from __future__ import annotations

from pathlib import Path

from cloud.api.app import create_app
from cloud.api.server import make_server
from cloud.auth import Role, create_key, revoke_key
from cloud.config import load_cloud_config
from cloud.db.engine import open_database
from cloud.service import CloudService
from cloud.webhooks import unknown_tracks
from shared.errors import ConfigError
from shared.layout import load_facility


def run_cloud(config_path: Path) -> None:
    """Ingest, estimate and serve until SIGTERM (uvicorn handles the signal, the lifespan stops all)."""
    config = load_cloud_config(config_path)
    facility = load_facility(config.layout)
    unknown = unknown_tracks(config.webhooks, set(facility.tracks))
    if unknown:
        raise ConfigError(str(config_path), unknown)
    service = CloudService.open(config, facility)
    make_server(create_app(service), config.api.host, config.api.port).run()


def run_recognition(config_path: Path) -> None:
    """The recognition worker, until SIGTERM or SIGINT."""
    import signal
    import threading

    from cloud.recognition.worker import RecognitionWorker

    config = load_cloud_config(config_path)
    worker = RecognitionWorker.open(config, load_facility(config.layout).site)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker.run(stop)


def new_key(config_path: Path, role: Role, name: str) -> str:
    """Create an API key in the configured database."""
    config = load_cloud_config(config_path)
    engine = open_database(config.database_url)
    try:
        return create_key(engine, role, name)
    finally:
        engine.dispose()


def drop_key(config_path: Path, prefix: str) -> bool:
    """Revoke an API key by its first characters."""
    config = load_cloud_config(config_path)
    engine = open_database(config.database_url)
    try:
        return revoke_key(engine, prefix)
    finally:
        engine.dispose()
