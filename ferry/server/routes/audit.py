"""``/v1/orgs/{slug}/audit`` and ``/v1/audit`` (Ferry): read the audit trail (docs/audit.md).

An organization's trail is for its admins and the operator; anyone else gets
the same 404 as for any organization they cannot see (a member who is not an
admin: 403). ``/v1/audit`` is every record, the operator's alone (the
fail-closed default of ``ferry.server.authz.route_need``). There is no route
that changes or removes a record.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ferry.model.audit import AuditRecord
from ferry.server.auth import principal_of
from ferry.server.authz import Access, require_org
from ferry.server.context import ControlPlane, json_response
from ferry.server.query_params import allow_query

__all__ = ["build_router"]

_LIMIT = Query(default=100, ge=1, le=1000, description="at most this many records")
_BEFORE = Query(
    default=None,
    ge=1,
    le=2**63 - 1,  # SQLite's largest INTEGER: a larger id failed the query (500)
    description="only records older than this id (the last id of a page)",
)


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["audit"], dependencies=[Depends(allow_query("limit", "before"))])

    @router.get("/v1/orgs/{slug}/audit", responses={200: {"model": list[AuditRecord]}})
    def org_audit(
        request: Request, slug: str, limit: int = _LIMIT, before: int | None = _BEFORE
    ) -> JSONResponse:
        """The organization's records, newest first: calls on its apps and itself,
        including other organizations' refused attempts against them."""
        require_org(principal_of(request), slug, Access.ADMIN)
        plane.store.get_org(slug)
        return json_response(plane.store.list_audit(slug, limit=limit, before=before))

    @router.get("/v1/audit", responses={200: {"model": list[AuditRecord]}})
    def all_audit(limit: int = _LIMIT, before: int | None = _BEFORE) -> JSONResponse:
        """(Operator) Every record, newest first, those of no organization included."""
        return json_response(plane.store.list_audit(None, limit=limit, before=before))

    return router
