"""Reports from the stored history: how busy each station was, and each locomotive's visits, as JSON
or CSV (`?format=csv` or `Accept: text/csv`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from cloud.api.deps import FlowDep, ServiceDep, ViewerKey
from cloud.api.params import ApiTime
from cloud.api.schemas import DwellReport, StationFiguresPublic, StationReport, VisitPublic
from cloud.backlog_replay import MIN_REPLAY_STEP
from cloud.db.report_rows import replayed_inputs
from cloud.flows import FlowRuntime
from cloud.reports import Visit, station_figures, visits
from cloud.service import CloudService

router = APIRouter(prefix="/api/reports", tags=["reports"])

# Longer periods than this are refused: a report reads every position of the period.
MAX_PERIOD = timedelta(days=366)
CSV = {"text/csv": {"schema": {"type": "string"}, "example": "station_id,name,..."}}

From = Annotated[ApiTime, Query(alias="from", description="Start of the period (with a time zone).")]
To = Annotated[ApiTime, Query(alias="to", description="End of the period, not included.")]
MinDwell = Annotated[
    float,
    Query(ge=0, le=86_400, description="Stays shorter than this are not visits (passing through)."),
]
Format = Annotated[Literal["json", "csv"] | None, Query(description="csv, or json (the default).")]


@dataclass(frozen=True)
class Period:
    """What a report covers: [start, end), and the shortest stay that counts as a visit."""

    start: datetime
    end: datetime
    min_dwell: timedelta


def report_period(start: From, end: To, min_dwell_s: MinDwell = 60.0) -> Period:
    """The period asked for; 422 unless `to` is later than `from`, and by at most MAX_PERIOD."""
    if not start < end:
        raise HTTPException(422, "`to` must be later than `from`")
    if end - start > MAX_PERIOD:
        raise HTTPException(422, f"a report covers at most {MAX_PERIOD.days} days")
    return Period(start, end, timedelta(seconds=min_dwell_s))


PeriodDep = Annotated[Period, Depends(report_period)]


@router.get("/stations", response_model=StationReport, responses={200: {"content": CSV}})
def station_report(
    _: ViewerKey,
    service: ServiceDep,
    flow: FlowDep,
    request: Request,
    period: PeriodDep,
    format: Format = None,
) -> StationReport | Response:
    """Per station over [from, to): the share of the period it was occupied, its visits and their mean
    and longest dwell."""
    found = _visits(service, flow, period)[0]
    figures = [
        StationFiguresPublic.model_validate(f, from_attributes=True)
        for f in station_figures(flow.fse.facility, found, period.start, period.end)
    ]
    if _wants_csv(request, format):
        return _csv(figures, StationFiguresPublic)
    return StationReport(start=period.start, end=period.end, stations=figures)


@router.get("/dwell", response_model=DwellReport, responses={200: {"content": CSV}})
def dwell_report(
    _: ViewerKey,
    service: ServiceDep,
    flow: FlowDep,
    request: Request,
    period: PeriodDep,
    format: Format = None,
) -> DwellReport | Response:
    """Each locomotive's visits to the stations that overlap [from, to), oldest first, with its series
    and number where they settled."""
    found, identities = _visits(service, flow, period)
    rows = []
    for v in found:
        series, number = identities.get(v.loco_id, (None, None))
        rows.append(
            VisitPublic(
                station=v.station,
                track_id=v.track_id,
                loco_id=v.loco_id,
                series=series,
                number=number,
                arrived=v.arrived,
                left=v.left,
                dwell_s=round(v.dwell(period.end).total_seconds(), 1),
            )
        )
    if _wants_csv(request, format):
        return _csv(rows, VisitPublic)
    return DwellReport(start=period.start, end=period.end, visits=rows)


def _visits(
    service: CloudService, flow: FlowRuntime, period: Period
) -> tuple[list[Visit], dict[str, tuple[str | None, str | None]]]:
    inputs = replayed_inputs(
        service.engine,
        flow.name,
        period.start,
        period.end,
        flow.fse.facility,
        flow.fse.settings,
        max(flow.interval, MIN_REPLAY_STEP),
    )
    found = visits(inputs.stood, inputs.departures, period.start, period.end, period.min_dwell)
    return found, inputs.identities


def _wants_csv(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv(rows: Sequence[BaseModel], model: type[BaseModel]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    fields = list(model.model_fields)
    writer.writerow(fields)
    for row in rows:
        values = row.model_dump(mode="json")
        writer.writerow(["" if values[f] is None else values[f] for f in fields])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")
