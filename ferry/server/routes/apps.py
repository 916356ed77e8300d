"""``/v1/apps``: create, list, show and delete apps."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ferry.errors import ForbiddenError, NotFoundError, ValidationError
from ferry.model import App
from ferry.server.audit import note_audit
from ferry.server.auth import principal_of
from ferry.server.authz import Access, Principal, app_access, org_access, require_org
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import AppDeleted, AppList
from ferry.server.schemas import CreateAppRequest

__all__ = ["build_router"]


class MoveAppRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_slug: str


def _default_org(p: Principal) -> str:
    """The organization an app goes to when the body names none: the operator's
    ``personal``, or the caller's only organization."""
    if p.is_operator:
        return "personal"
    orgs = sorted(p.roles) if p.roles else [p.org_slug] if p.org_slug else []
    if not orgs:
        raise ForbiddenError(
            f"{p.describe()} may not create apps: it belongs to no organization",
            hint="use an organization's token, or your user token",
        )
    if len(orgs) != 1:
        raise ValidationError(
            "name the organization of the new app (org_slug)",
            hint=f"your organizations: {', '.join(orgs) or 'none'}",
        )
    return orgs[0]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/apps", tags=["apps"])

    @router.get("", responses={200: {"model": AppList}})
    def list_apps(request: Request, org_slug: str | None = None) -> JSONResponse:
        """The apps the caller may read (of ``org_slug`` when given: 404 if it sees none)."""
        p = principal_of(request)
        org_slug = org_slug or None
        if org_slug is not None:
            plane.store.get_org(org_slug)
        apps = [
            app
            for app in plane.store.list_apps(org_slug)
            if app_access(p, app.name, app.organization.slug) is not Access.NONE
        ]
        if org_slug is not None and not apps and org_access(p, org_slug) is Access.NONE:
            raise NotFoundError(
                f"organization {org_slug!r} not found", hint="see `ferry orgs list`"
            )
        return json_response({"total_apps": len(apps), "apps": apps})

    @router.post("", status_code=201, responses={201: {"model": App}})
    def create_app(request: Request, body: CreateAppRequest) -> JSONResponse:
        p = principal_of(request)
        org_slug = body.org_slug if "org_slug" in body.model_fields_set else _default_org(p)
        note_audit(request, org=org_slug, app_name=body.wanted_name)
        require_org(p, org_slug, Access.WRITE)
        app = plane.apps.create(body.wanted_name, org_slug, body.network)
        return json_response(app, 201)

    @router.post("/{app_name}/move", responses={200: {"model": App}})
    def move_app(request: Request, app_name: str, body: MoveAppRequest) -> JSONResponse:
        """(Ferry) Give the app to another organization; its app tokens end."""
        plane.access.move_app(principal_of(request), app_name, body.org_slug)
        return json_response(plane.store.get_app(app_name))

    @router.get("/{app_name}", responses={200: {"model": App}})
    def get_app(app_name: str) -> JSONResponse:
        return json_response(plane.store.get_app(app_name))

    @router.delete("/{app_name}", status_code=202, responses={202: {"model": AppDeleted}})
    def delete_app(app_name: str, force: bool = False) -> JSONResponse:
        outcome = plane.apps.delete(app_name, force=force)
        return json_response({"ok": True, "status": outcome}, 202)

    return router
