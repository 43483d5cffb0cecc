"""Data flows: which the cloud estimates, and how two of them compare over a time range."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from cloud.api.deps import DatabaseDep, ServiceDep, ViewerKey, flow_named
from cloud.api.params import ApiTime
from cloud.api.schemas import ComparisonPublic, FlowPublic
from cloud.compare import Comparison, view_of

router = APIRouter(prefix="/api/flows", tags=["flows"])
# One comparison recomputes both flows' states at each instant: this many at most per request.
MAX_INSTANTS = 2000


@router.get("", response_model=list[FlowPublic])
def list_flows(_: ViewerKey, service: ServiceDep) -> list[FlowPublic]:
    """The flows estimated here, with their estimators' settings."""
    return [
        FlowPublic(
            flow=name,
            clock=runtime.config.clock,
            update_interval_s=runtime.interval.total_seconds(),
            locomotives=len(runtime.fse.locos()),
            fse=runtime.fse.settings,
        )
        for name, runtime in sorted(service.flows.items())
    ]


@router.get("/compare", response_model=ComparisonPublic)
def compare_flows(
    _: ViewerKey,
    service: ServiceDep,
    a: Annotated[str, Query(description="The reference flow, e.g. prod.")],
    b: Annotated[str, Query(description="The flow compared with it, e.g. dev.")],
    _db: DatabaseDep,
    since: Annotated[ApiTime, Query(description="Start of the range (ISO 8601 with zone).")],
    until: Annotated[ApiTime, Query(description="End of the range (ISO 8601 with zone).")],
    step_s: Annotated[
        float, Query(gt=0, le=86400, allow_inf_nan=False, description="Seconds between compared instants.")
    ] = 10.0,
) -> ComparisonPublic:
    """Both flows' states recomputed at every `step_s` from `since` to `until`: occupancy agreement over
    the watched track both know, end distance of the locomotives both see, those only one sees, and
    identity switches (b giving one of a's locomotives a new id), and recognised series and numbers
    that differ."""
    flow_a, flow_b = flow_named(service, a), flow_named(service, b)
    if until <= since:
        raise HTTPException(422, "`until` must be after `since`")
    instants = int((until - since).total_seconds() // step_s) + 1
    if instants > MAX_INSTANTS:
        raise HTTPException(422, f"{instants} instants to compare; at most {MAX_INSTANTS}: raise step_s")
    comparison = Comparison()
    for k in range(instants):
        at = since + timedelta(seconds=k * step_s)
        past_a, past_b = flow_a.state_at(at), flow_b.state_at(at)
        if past_a is None or past_b is None:
            continue
        comparison.add(
            service.facility, view_of(past_a, flow_a.identities), view_of(past_b, flow_b.identities)
        )
    return ComparisonPublic(a=a, b=b, since=since, until=until, step_s=step_s, **comparison.summary())
