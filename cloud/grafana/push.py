"""Upload the dashboards to an existing Grafana (grafana-client), or write them out for provisioning."""

from __future__ import annotations

import json
from pathlib import Path

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaException

from cloud.grafana.dashboards import all_dashboards
from shared.errors import DepotwatchError


class GrafanaError(DepotwatchError):
    """Grafana refused or could not be reached."""


def push(url: str, token: str, timeout_s: float = 10.0) -> list[str]:
    """Create or overwrite every dashboard; returns their uids."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    uids = []
    for board in all_dashboards():
        try:
            api.dashboard.update_dashboard(
                {"dashboard": board, "overwrite": True, "message": "depotwatch grafana push"}
            )
        except (GrafanaException, OSError) as exc:
            raise GrafanaError(f"Grafana at {url} refused dashboard {board['uid']!r}: {exc}") from exc
        uids.append(str(board["uid"]))
    return uids


def export(folder: Path) -> list[Path]:
    """Write each dashboard as <uid>.json (for Grafana's file provisioning)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for board in all_dashboards():
        path = folder / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=2) + "\n")
        paths.append(path)
    return paths
