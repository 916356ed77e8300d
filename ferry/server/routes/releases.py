"""``/v1/apps/{app}/releases``: an app's releases, one per deploy (Ferry-only; docs/api.md).

``ferry deploy`` records a ``running`` release before it changes a machine and
marks it ``complete`` or ``failed`` when it ends; ``ferry releases`` lists them
and ``ferry releases rollback`` reads one back to deploy its image and config.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from ferry.model.release import NewRelease, Release, ReleaseStatusUpdate
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response

__all__ = ["DEPLOYER", "build_router"]

#: The name recorded as a release's ``user`` when the operator (the admin token) deploys.
DEPLOYER = "admin"

_VERSION = Path(ge=1, le=2**31, description="the release's version number (1, 2, 3 …)")


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/apps/{app_name}/releases", tags=["releases"])

    @router.get("", responses={200: {"model": list[Release]}})
    def list_releases(
        app_name: str, limit: int = Query(default=100, ge=1, le=1000)
    ) -> JSONResponse:
        """The app's releases, newest first; 404 for an unknown app."""
        plane.store.get_app(app_name)
        return json_response(plane.store.list_releases(app_name, limit))

    @router.post("", status_code=201, responses={201: {"model": Release}})
    def create_release(request: Request, app_name: str, body: NewRelease) -> JSONResponse:
        """Record a ``running`` release with the next version, its user the caller (a
        member's email, a token's name; ``admin`` for the operator); 404 for an unknown app."""
        user = principal_of(request).who
        created = plane.store.create_release(app_name, body, user=user, at=plane.clock.now())
        return json_response(created, status_code=201)

    @router.get("/{version}", responses={200: {"model": Release}})
    def get_release(app_name: str, version: int = _VERSION) -> JSONResponse:
        plane.store.get_app(app_name)
        return json_response(plane.store.get_release(app_name, version))

    @router.patch("/{version}", responses={200: {"model": Release}})
    def finish_release(
        app_name: str, body: ReleaseStatusUpdate, version: int = _VERSION
    ) -> JSONResponse:
        """Mark a running release ``complete`` or ``failed``; 409 once it has finished."""
        plane.store.get_app(app_name)
        finished = plane.store.finish_release(app_name, version, body.status, at=plane.clock.now())
        return json_response(finished)

    return router
