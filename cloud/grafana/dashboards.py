"""Grafana dashboards as code: every panel is a PostgreSQL query over the cloud's tables, with the
columns it must return (checked by a test against a real database), rendered to Grafana's JSON model.

Two dashboards: the facility (map over track metres, locomotives with series and number, station
occupancy over time, events; for the data flow chosen at the top, prod by default) and edge health
(cameras, nodes, detections received per minute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "depotwatch-postgres"
DATASOURCE = {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID}
# The facility dashboard's flow picker: every flow an estimator has written locomotives for.
FLOW_VARIABLE_SQL = "SELECT DISTINCT flow FROM locomotives ORDER BY 1"


@dataclass(frozen=True)
class Panel:
    """One panel: its query and the columns the visualisation reads."""

    title: str
    kind: str  # Grafana panel type
    sql: str
    columns: tuple[str, ...]
    width: int = 12
    height: int = 8
    table_format: bool = True  # "table" result format; False: "time_series"
    options: dict[str, Any] = field(default_factory=dict)


LOCOMOTIVES_SQL = """
SELECT l.track_id, DENSE_RANK() OVER (ORDER BY l.track_id) AS track_row,
       l.start_m, l.end_m, (l.start_m + l.end_m) / 2 AS centre_m,
       l.loco_id, COALESCE(i.series, '?') AS model, COALESCE(i.plate, '?') AS number,
       l.station, l.moving, l.first_seen
FROM locomotives l LEFT JOIN identities i ON i.loco_id = l.loco_id
WHERE l.present AND l.flow = '${flow}'
ORDER BY l.track_id, l.start_m
""".strip()
LOCOMOTIVE_COLUMNS = (
    "track_id",
    "track_row",
    "start_m",
    "end_m",
    "centre_m",
    "loco_id",
    "model",
    "number",
    "station",
    "moving",
    "first_seen",
)

# The visits to the stations in the dashboard's time range, as GET /api/reports/dwell has them: the
# cloud keeps them in station_visits (cloud.visits_keeper: from the recorded positions and departures,
# with periods known only from an edge's backlog replayed), up to `visits_refresh_s` behind; stays under
# a minute are passing through. `left` is null, and the dwell runs to the range's end, while the
# locomotive is still there at that end.
_VISITS = """
WITH period AS (SELECT $__timeFrom()::timestamptz AS t0, $__timeTo()::timestamptz AS t1),
v AS (
  SELECT s.station, s.track_id, s.loco_id, i.series, i.plate AS number, s.arrived,
         CASE WHEN s."left" < period.t1 THEN s."left" END AS "left",
         EXTRACT(EPOCH FROM LEAST(COALESCE(s."left", period.t1), period.t1) - s.arrived) AS dwell_s
  FROM station_visits s CROSS JOIN period LEFT JOIN identities i ON i.loco_id = s.loco_id
  WHERE s.flow = '${flow}' AND s.arrived < period.t1 AND (s."left" IS NULL OR s."left" > period.t0)
    AND LEAST(COALESCE(s."left", period.t1), period.t1) - s.arrived >= INTERVAL '60 seconds'
)
""".strip()
VISITS_SQL = _VISITS + "\nSELECT * FROM v ORDER BY arrived, station, loco_id"
VISIT_COLUMNS = ("station", "track_id", "loco_id", "series", "number", "arrived", "left", "dwell_s")
# Per station over the time range, as GET /api/reports/stations has it (the stations visited): the share
# of the range any visit held it (the union of its visits, clipped to the range), its visits and their
# dwell. Built of constants only.
STATIONS_SQL = (
    _VISITS  # noqa: S608
    + """,
held AS (
  SELECT station, unnest(range_agg(tstzrange(
           GREATEST(arrived, period.t0), LEAST(COALESCE("left", period.t1), period.t1)))) AS span
  FROM v, period GROUP BY station
), share AS (
  SELECT station, EXTRACT(EPOCH FROM SUM(upper(span) - lower(span))) AS held_s FROM held GROUP BY station
)
SELECT v.station AS station_id, COUNT(*) AS visits,
       MAX(s.held_s) / MAX(EXTRACT(EPOCH FROM period.t1 - period.t0)) AS occupied_share,
       AVG(v.dwell_s) AS mean_dwell_s, MAX(v.dwell_s) AS max_dwell_s
FROM v JOIN share s ON s.station = v.station CROSS JOIN period
GROUP BY v.station ORDER BY v.station"""
)
STATION_COLUMNS = ("station_id", "visits", "occupied_share", "mean_dwell_s", "max_dwell_s")

FACILITY = [
    Panel(
        "Facility map (track metres; one row per track)",
        "xychart",
        LOCOMOTIVES_SQL,
        LOCOMOTIVE_COLUMNS,
        width=24,
        options={"seriesMapping": "auto", "dims": {"x": "centre_m"}},
    ),
    Panel(
        "Locomotives in the facility",
        "table",
        LOCOMOTIVES_SQL,
        LOCOMOTIVE_COLUMNS,
    ),
    Panel(
        "Station occupancy",
        "state-timeline",
        """
SELECT at AS time, station AS metric,
       CASE WHEN kind = 'station_occupied' THEN loco_id ELSE 'free' END AS value
FROM events
WHERE kind IN ('station_occupied', 'station_freed') AND station IS NOT NULL AND flow = '${flow}'
  AND $__timeFilter(at)
ORDER BY at
""".strip(),
        ("time", "metric", "value"),
    ),
    Panel("Stations over the time range", "table", STATIONS_SQL, STATION_COLUMNS),
    Panel("Visits to the stations", "table", VISITS_SQL, VISIT_COLUMNS),
    Panel(
        "Events",
        "table",
        """
SELECT at AS time, kind, track_id, loco_id, station, camera_id, detail
FROM events
WHERE flow = '${flow}' AND $__timeFilter(at)
ORDER BY at DESC
LIMIT 500
""".strip(),
        ("time", "kind", "track_id", "loco_id", "station", "camera_id", "detail"),
        width=24,
    ),
]

EDGE_HEALTH = [
    Panel(
        "Cameras",
        "table",
        """
SELECT camera_id, node_id, state, fps_captured, fps_inferred, reconnects_last_hour, reason, at AS reported
FROM cameras
ORDER BY camera_id
""".strip(),
        (
            "camera_id",
            "node_id",
            "state",
            "fps_captured",
            "fps_inferred",
            "reconnects_last_hour",
            "reason",
            "reported",
        ),
        width=24,
    ),
    Panel(
        "Edge nodes (spool depth: detections waiting to be sent)",
        "table",
        """
SELECT node_id, state, spool_depth, cameras_online, cameras_total, changed_at
FROM nodes
ORDER BY node_id
""".strip(),
        ("node_id", "state", "spool_depth", "cameras_online", "cameras_total", "changed_at"),
    ),
    Panel(
        "Detections received per minute, by node",
        "timeseries",
        """
SELECT $__timeGroupAlias(received_at, '1m'), node_id AS metric, count(*) AS detections
FROM observations
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1
""".strip(),
        ("time", "metric", "detections"),
        table_format=False,
    ),
]

DASHBOARDS = {
    "depotwatch-facility": ("depotwatch — facility", FACILITY),
    "depotwatch-edge": ("depotwatch — edge health", EDGE_HEALTH),
}


def dashboard(uid: str) -> dict[str, Any]:
    """Grafana's JSON model of one dashboard."""
    title, panels = DASHBOARDS[uid]
    out, x, y, row_height = [], 0, 0, 0
    for index, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + row_height
            row_height = 0
        out.append(
            {
                "id": index,
                "type": panel.kind,
                "title": panel.title,
                "datasource": DATASOURCE,
                "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
                "options": panel.options,
                "targets": [
                    {
                        "refId": "A",
                        "datasource": DATASOURCE,
                        "editorMode": "code",
                        "format": "table" if panel.table_format else "time_series",
                        "rawQuery": True,
                        "rawSql": panel.sql,
                    }
                ],
            }
        )
        x += panel.width
        row_height = max(row_height, panel.height)
    variables = []
    if any("${flow}" in panel.sql for panel in panels):
        variables.append(
            {
                "name": "flow",
                "label": "Flow",
                "type": "query",
                "datasource": DATASOURCE,
                "query": FLOW_VARIABLE_SQL,
                "definition": FLOW_VARIABLE_SQL,
                "current": {"text": "prod", "value": "prod"},
                "refresh": 1,
            }
        )
    return {
        "uid": uid,
        "title": title,
        "templating": {"list": variables},
        "tags": ["depotwatch"],
        "timezone": "browser",
        "refresh": "10s",
        "time": {"from": "now-24h", "to": "now"},
        "schemaVersion": 39,
        "panels": out,
    }


def all_dashboards() -> list[dict[str, Any]]:
    """Grafana's JSON model of every dashboard."""
    return [dashboard(uid) for uid in DASHBOARDS]
