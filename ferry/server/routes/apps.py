"""``/v1/apps``: create, list, show and delete apps."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ferry.model import App
from ferry.server.context import ControlPlane, json_response
from ferry.server.schemas import CreateAppRequest

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/apps", tags=["apps"])

    @router.get("", responses={200: {"description": '{"total_apps": N, "apps": [App]}'}})
    def list_apps(org_slug: str | None = None) -> JSONResponse:
        org_slug = org_slug or None
        if org_slug is not None:
            plane.store.get_org(org_slug)
        apps = plane.store.list_apps(org_slug)
        return json_response({"total_apps": len(apps), "apps": apps})

    @router.post("", status_code=201, responses={201: {"model": App}})
    def create_app(body: CreateAppRequest) -> JSONResponse:
        app = plane.apps.create(body.wanted_name, body.org_slug, body.network)
        return json_response(app, 201)

    @router.get("/{app_name}", responses={200: {"model": App}})
    def get_app(app_name: str) -> JSONResponse:
        return json_response(plane.store.get_app(app_name))

    @router.delete("/{app_name}", status_code=202)
    def delete_app(app_name: str, force: bool = False) -> JSONResponse:
        outcome = plane.apps.delete(app_name, force=force)
        return json_response({"ok": True, "status": outcome}, 202)

    return router
