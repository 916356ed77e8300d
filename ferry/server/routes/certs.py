"""``/v1/apps/{app}/certificates``: an app's host names and their ACME certificates (the
Machines API's certificates resource), and ``/v1/edges/{region}/tls``: what the edges serve.

Users see hostnames, status, issuer, expiry, DNS requirements and the last error —
never a key. The edge feed carries the private keys and answers edge credentials
only (not the operator's token, not a user's): ``route_need`` makes it an edge
route, and the route itself refuses every other kind of caller.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ferry.errors import ForbiddenError
from ferry.model.access import TokenKind
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import Ok
from ferry.store.certs_base import CertRow
from ferry.tls.certs_wire import edge_tls_to_json

__all__ = ["build_router", "certificate_view"]


class AddCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str = Field(min_length=1, max_length=300)


class IssuedCertificate(BaseModel):
    type: str
    expires_at: datetime | None
    certificate_authority: str


class CertificateView(BaseModel):
    """One host name of an app (Fly's ``AppCertificate`` fields, snake_case)."""

    model_config = ConfigDict(extra="allow")

    hostname: str
    app_name: str
    configured: bool
    status: str
    client_status: str
    acme_requested: bool = True
    source: str = "ferry"
    certificate_authority: str
    dns_validation_hostname: str
    dns_validation_target: str
    dns_requirements: dict[str, Any]
    issued: list[IssuedCertificate]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_error: str | None
    next_attempt_at: datetime | None
    check: dict[str, Any] | None = None


class CertificateList(BaseModel):
    certificates: list[CertificateView]
    total_count: int


class EdgeTlsFeed(BaseModel):
    """The edge's TLS snapshot (keys included): see ``ferry.tls.certs_wire``."""

    model_config = ConfigDict(extra="allow")

    version: int


_CLIENT_STATUS = {"issued": "Ready", "pending": "Awaiting certificates", "failed": "Failed"}


def certificate_view(
    row: CertRow, plane: ControlPlane, check: dict[str, Any] | None = None
) -> CertificateView:
    settings = plane.certs.settings
    ca = urlsplit(settings.directory_url).hostname or "none configured"
    base = row.hostname.removeprefix("*.")
    now = plane.clock.now()
    configured = row.status == "issued" and row.not_after is not None and row.not_after > now
    issued = [IssuedCertificate(type="ecdsa", expires_at=row.not_after, certificate_authority=ca)]
    status = _CLIENT_STATUS.get(row.status, row.status)
    if row.status == "issued" and not configured:
        status = "Expired"
    return CertificateView(
        hostname=row.hostname,
        app_name=row.app_name,
        configured=configured,
        status=row.status,
        client_status=status,
        certificate_authority=ca,
        dns_validation_hostname=f"_acme-challenge.{base}",
        dns_validation_target=f"_acme-challenge.{base} (TXT served by the cluster's DNS)",
        dns_requirements={
            "a": list(settings.edge_addresses),
            "acme_challenge": {"name": f"_acme-challenge.{base}"},
        },
        issued=issued if row.status == "issued" else [],
        expires_at=row.not_after,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_error=row.last_error or None,
        next_attempt_at=row.next_attempt if row.failures else None,
        check=check,
    )


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["certificates"])
    certs = plane.certs

    @router.get("/v1/apps/{app_name}/certificates", responses={200: {"model": CertificateList}})
    def list_certificates(app_name: str) -> JSONResponse:
        views = [certificate_view(row, plane) for row in certs.list_for(app_name)]
        return json_response(CertificateList(certificates=views, total_count=len(views)))

    @router.post(
        "/v1/apps/{app_name}/certificates/acme",
        status_code=201,
        responses={201: {"model": CertificateView}, 409: {}},
    )
    def add_certificate(app_name: str, body: AddCertificate) -> JSONResponse:
        """Add a host name; its certificate is ordered from the ACME CA in the background.
        400: not a host name, or one in the cluster's domain; 409: the name is taken."""
        row = certs.add(app_name, body.hostname)
        return json_response(certificate_view(row, plane), status_code=201)

    @router.get(
        "/v1/apps/{app_name}/certificates/{hostname}",
        responses={200: {"model": CertificateView}},
    )
    def show_certificate(app_name: str, hostname: str) -> JSONResponse:
        return json_response(certificate_view(certs.get(app_name, hostname), plane))

    @router.post(
        "/v1/apps/{app_name}/certificates/{hostname}/check",
        responses={200: {"model": CertificateView}},
    )
    def check_certificate(app_name: str, hostname: str) -> JSONResponse:
        """Re-check DNS and the order now (an order is placed at once when one is due,
        failed or given up); ``check.reason`` says why it is or is not ready."""
        row, addresses, reason = certs.check(app_name, hostname)
        edges = set(plane.certs.settings.edge_addresses)
        check = {
            "resolves_to": addresses,
            "points_at_edges": bool(set(addresses) & edges) if edges else None,
            "reason": reason,
        }
        return json_response(certificate_view(row, plane, check))

    @router.delete("/v1/apps/{app_name}/certificates/{hostname}", responses={200: {"model": Ok}})
    def remove_certificate(app_name: str, hostname: str) -> JSONResponse:
        """Remove the host name and its certificate; edges stop serving it."""
        certs.remove(app_name, hostname)
        return json_response({"ok": True})

    @router.get("/v1/edges/{region}/tls", responses={200: {"model": EdgeTlsFeed}})
    async def edge_tls(
        request: Request,
        region: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> JSONResponse:
        """The certificates (with keys) and ACME challenges every edge serves, at a version.

        Edge credentials only. Long-polls: answers at once when ``since`` is 0 or not the
        current version, else when the certificates change or after ``timeout``."""
        if principal_of(request).kind != TokenKind.EDGE:
            raise ForbiddenError(
                "only an edge's credential may read the edges' TLS keys",
                hint="edges use the credential the cluster gave them",
            )
        certs.acks.record(region, since)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = certs.changes.version()
            remaining = deadline - loop.time()
            if not since or certs.store.certificates_version() != since or remaining <= 0:
                break
            await certs.changes.wait(None, seen, remaining)
        snapshot = await run_in_threadpool(certs.edge_snapshot)
        return JSONResponse(edge_tls_to_json(snapshot))

    return router
