"""The facility layout: read by anyone with a key, replaced by admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException

from cloud.api.deps import AdminKey, ServiceDep, ViewerKey
from shared.errors import LayoutError
from shared.layout import parse_facility

router = APIRouter(prefix="/api/layout", tags=["layout"])


@router.get("")
def get_layout(_: ViewerKey, service: ServiceDep) -> dict[str, Any]:
    """Tracks, stations, nodes and cameras as the service uses them (the layout file's content)."""
    return service.facility.model_dump(mode="json")


@router.put("")
def put_layout(
    role: AdminKey, service: ServiceDep, document: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """Replace the layout: validated as a whole (422 lists every bad key), written to the layout file,
    and used by the state estimator at once; locomotives on tracks that remain keep their ids.
    Edge nodes read their cameras from their own configuration: roll out a camera change to them."""
    try:
        facility = parse_facility(document, "request body")
    except LayoutError as exc:
        raise HTTPException(
            422, [{"key": issue.key, "message": issue.message} for issue in exc.issues]
        ) from exc
    if facility.site != service.facility.site:
        raise HTTPException(
            409,
            f"the site id cannot change ({service.facility.site!r} → {facility.site!r}); "
            "it names every MQTT topic",
        )
    service.replace_layout(facility, by=f"api:{role.value}")
    return facility.model_dump(mode="json")
