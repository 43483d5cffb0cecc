"""The facility as a Sparkplug B edge node (`sparkplug:` in the cloud config), for the plant's SCADA:
a device per track (`track-<id>`: Occupied, Locomotive Count, and per locomotive present
`Locomotives/<id>/Number`, `Series`, `Head m`, `Tail m`, `Station`, `State`, `Since`) and one per station
(`station-<id>`: Track, Occupied, Occupied By, Number, Series, Since), from the prod flow's live state
(the map's), sent by exception over the shared Sparkplug session. A track is born again (DBIRTH) when
its locomotives change, since Sparkplug declares every metric at birth. Head m is a locomotive's
higher track metre and Tail m its lower (which end leads is not known); an unknown number or series is
a null metric."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from cloud.config import SparkplugConfig
from cloud.db.counters import next_counter
from cloud.depot_view import DepotView, StationSince
from shared.mqtt import BrokerConfig
from shared.sparkplug.edge_node import NodeReport, SparkplugEdgeNode, metrics
from shared.sparkplug.payload import DataType, Metric


def track_device(track_id: str) -> str:
    """The Sparkplug device id of a track."""
    return f"track-{track_id}"


def station_device(station_id: str) -> str:
    """The Sparkplug device id of a station."""
    return f"station-{station_id}"


def facility_node(
    config: SparkplugConfig,
    *,
    site: str,
    broker: BrokerConfig,
    client_id: str,
    view: Callable[[], DepotView],
    engine: Engine,
) -> SparkplugEdgeNode:
    """The facility's Sparkplug session (not started); its bdSeq counts on in the database."""
    stations = StationSince()
    return SparkplugEdgeNode(
        broker=broker,
        client_id=client_id,
        group_id=config.group_id or site,
        node_id=config.node_id,
        report=lambda: facility_report(view(), stations),
        next_bd_seq=lambda: next_counter(engine, f"sparkplug_bd_seq:{config.node_id}"),
        interval_s=config.interval_s,
    )


def facility_report(view: DepotView, stations: StationSince) -> NodeReport:
    """The facility's metrics now."""
    devices = {}
    for track in view.tracks:
        track_metrics = [
            Metric("Occupied", DataType.BOOLEAN, bool(track.locos)),
            Metric("Locomotive Count", DataType.INT32, len(track.locos)),
        ]
        for loco in track.locos:
            base = f"Locomotives/{loco.loco_id}"
            track_metrics += [
                Metric(f"{base}/Number", DataType.STRING, loco.number),
                Metric(f"{base}/Series", DataType.STRING, loco.model),
                Metric(f"{base}/Head m", DataType.DOUBLE, round(loco.end_m, 2)),
                Metric(f"{base}/Tail m", DataType.DOUBLE, round(loco.start_m, 2)),
                Metric(f"{base}/Station", DataType.STRING, loco.station),
                Metric(f"{base}/State", DataType.STRING, "moving" if loco.moving else "standing"),
                Metric(f"{base}/Since", DataType.DATETIME, loco.first_seen),
            ]
        devices[track_device(track.track_id)] = metrics(*track_metrics)
    for station in stations.stations(view):
        occupant = station.occupant
        devices[station_device(station.station_id)] = metrics(
            Metric("Track", DataType.STRING, station.track_id),
            Metric("Occupied", DataType.BOOLEAN, occupant is not None),
            Metric("Occupied By", DataType.STRING, occupant.loco_id if occupant else None),
            Metric("Number", DataType.STRING, occupant.number if occupant else None),
            Metric("Series", DataType.STRING, occupant.model if occupant else None),
            Metric("Since", DataType.DATETIME, station.since),
        )
    present = sum(len(track.locos) for track in view.tracks)
    node = metrics(
        Metric("Properties/Site", DataType.STRING, view.facility.site),
        Metric("Locomotives Present", DataType.INT32, present),
    )
    return NodeReport(node, devices)
