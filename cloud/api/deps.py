"""Dependencies of the API routes: the service, a database session, and API-key roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request, status
from sqlmodel import Session

from cloud.auth import DatabaseUnavailable, Role
from cloud.flows import FlowRuntime
from cloud.service import CloudService
from shared.layout import Camera


def get_service(request: Request) -> CloudService:
    """The service the app runs over."""
    service: CloudService = request.app.state.service
    return service


ServiceDep = Annotated[CloudService, Depends(get_service)]


def get_flow(
    service: ServiceDep, flow: Annotated[str, Query(description="Data flow (prod, dev, …).")] = "prod"
) -> FlowRuntime:
    """The flow a request asks for (`?flow=`, prod by default); 404 if none runs it."""
    return flow_named(service, flow)


def camera_named(service: CloudService, camera_id: str) -> Camera:
    """The layout's camera of that id; 404 if there is none."""
    camera = service.facility.cameras.get(camera_id)
    if camera is None:
        raise HTTPException(404, f"no camera {camera_id!r} in the layout")
    return camera


def flow_named(service: CloudService, flow: str) -> FlowRuntime:
    """The flow's estimator; 404 naming the flows there are."""
    runtime = service.flows.get(flow)
    if runtime is None:
        known = ", ".join(sorted(service.flows))
        raise HTTPException(404, f"no estimator runs flow {flow!r} (flows: {known})")
    return runtime


FlowDep = Annotated[FlowRuntime, Depends(get_flow)]


def database_available(service: ServiceDep) -> None:
    """503 at once while the database is away (rather than a request hanging on it)."""
    if not service.database.available:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the database is not reachable ({service.database.reason}); the live state "
            "(/api/state without `at`, /api/live) is still served",
        )


DatabaseDep = Annotated[None, Depends(database_available)]


def get_session(service: ServiceDep, _: DatabaseDep) -> Iterator[Session]:
    """A database session for one request, once the database is known to answer."""
    with Session(service.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require(needed: Role) -> Callable[..., Role]:
    """A dependency admitting keys of `needed` or a higher role: 401 without a valid key, 403 below it."""

    def check(service: ServiceDep, x_api_key: Annotated[str | None, Header()] = None) -> Role:
        if not x_api_key:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "an X-API-Key header is required")
        try:
            role = service.keys.role(x_api_key, service.database.available)
        except DatabaseUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from exc
        if role is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key")
        if not role.allows(needed):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs {_a(needed.value)} key, yours is {_a(role.value)} key"
            )
        return role

    return check


def _a(word: str) -> str:
    """The word with its indefinite article: an admin, an operator, a viewer."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


ViewerKey = Annotated[Role, Depends(require(Role.VIEWER))]
OperatorKey = Annotated[Role, Depends(require(Role.OPERATOR))]
AdminKey = Annotated[Role, Depends(require(Role.ADMIN))]
