"""``/v1/apps/{app}/machines/{id}/…``: lease, metadata, cordon, versions and ps (Fly's shapes).

- ``POST/GET/DELETE …/lease``: fly-go's ``MachineLease`` envelope
  ``{"status": "success", "data": {nonce, expires_at, owner, description, version}}``.
  ``ttl`` comes in the body or as ``?ttl=`` (fly-go sends the query form).
- ``GET …/metadata`` answers the plain ``{key: value}`` map; ``POST …/metadata/{key}``
  with ``{"value": …}`` and ``DELETE …/metadata/{key}`` answer 204, like Fly.
- ``POST …/cordon`` / ``…/uncordon`` answer ``{"ok": true}``; the lease nonce is honoured.
- ``GET …/versions``: ``[{"version", "user_config"}]`` newest first, from the store's
  record of every config the machine had (one per instance id).
- ``GET …/ps``: fly-go's ``[ProcessStat]`` from the latest list the machine's agent
  reported (``ferry.server.processes`` has the freshness rule), its age in seconds in
  the ``Ferry-Ps-Age`` header; Fly's ``sort_by`` and ``order`` query parameters.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from ferry.errors import ValidationError
from ferry.model.lease import NONCE_HEADER, MachineLease
from ferry.model.machine import MachineVersion
from ferry.model.processes import (
    PS_AGE_HEADER,
    PS_ORDERS,
    PS_SORT_KEYS,
    ProcessStat,
    sort_processes,
)
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response
from ferry.server.leases_service import lease_ttl
from ferry.server.openapi import LeaseEnvelope, LeaseReleased, Ok
from ferry.server.query_params import allow_query
from ferry.server.schemas import AcquireLeaseRequest, SetMetadataRequest

__all__ = ["NONCE", "build_router", "lease_answer"]

#: The ``fly-machine-lease-nonce`` request header, as a route parameter default.
NONCE = Header(None, alias=NONCE_HEADER)
_NO_QUERY = [Depends(allow_query())]
_OK_BODY: dict[int | str, dict[str, Any]] = {200: {"model": Ok}}
_LEASE: dict[int | str, dict[str, Any]] = {200: {"model": LeaseEnvelope}}


def lease_answer(lease: MachineLease) -> dict[str, object]:
    """fly-go's ``MachineLease`` envelope around the lease data."""
    return {"status": "success", "data": lease.model_dump(mode="json")}


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter()
    leases = plane.leases
    labels = plane.labels

    @router.post(
        "/{machine_id}/lease", responses=_LEASE, dependencies=[Depends(allow_query("ttl"))]
    )
    def acquire_lease(
        request: Request,
        app_name: str,
        machine_id: str,
        body: AcquireLeaseRequest | None = None,
        ttl: str | None = None,
        nonce: str | None = NONCE,
    ) -> JSONResponse:
        """Acquire a lease, or refresh the caller's (its nonce in the header)."""
        body = body or AcquireLeaseRequest()
        seconds = lease_ttl(body.ttl if body.ttl is not None else ttl)
        lease = leases.acquire(
            app_name,
            machine_id,
            nonce=nonce,
            ttl=seconds,
            description=body.description,
            owner=principal_of(request).who,
        )
        return json_response(lease_answer(lease))

    @router.get("/{machine_id}/lease", responses=_LEASE, dependencies=_NO_QUERY)
    def get_lease(app_name: str, machine_id: str) -> JSONResponse:
        return json_response(lease_answer(leases.get(app_name, machine_id)))

    @router.delete(
        "/{machine_id}/lease", responses={200: {"model": LeaseReleased}}, dependencies=_NO_QUERY
    )
    def release_lease(app_name: str, machine_id: str, nonce: str | None = NONCE) -> JSONResponse:
        leases.release(app_name, machine_id, nonce=nonce)
        return json_response({"status": "success"})

    @router.get(
        "/{machine_id}/metadata", responses={200: {"model": dict[str, str]}}, dependencies=_NO_QUERY
    )
    def get_metadata(app_name: str, machine_id: str) -> JSONResponse:
        return json_response(labels.metadata(app_name, machine_id))

    @router.post("/{machine_id}/metadata/{key}", status_code=204, dependencies=_NO_QUERY)
    def set_metadata(
        app_name: str, machine_id: str, key: str, body: SetMetadataRequest
    ) -> Response:
        labels.set_metadata(app_name, machine_id, key, body.value)
        return Response(status_code=204)

    @router.delete("/{machine_id}/metadata/{key}", status_code=204, dependencies=_NO_QUERY)
    def delete_metadata(app_name: str, machine_id: str, key: str) -> Response:
        labels.delete_metadata(app_name, machine_id, key)
        return Response(status_code=204)

    @router.post("/{machine_id}/cordon", responses=_OK_BODY, dependencies=_NO_QUERY)
    def cordon(app_name: str, machine_id: str, nonce: str | None = NONCE) -> JSONResponse:
        leases.require(app_name, machine_id, nonce)
        labels.cordon(app_name, machine_id)
        return json_response({"ok": True})

    @router.post("/{machine_id}/uncordon", responses=_OK_BODY, dependencies=_NO_QUERY)
    def uncordon(app_name: str, machine_id: str, nonce: str | None = NONCE) -> JSONResponse:
        leases.require(app_name, machine_id, nonce)
        labels.uncordon(app_name, machine_id)
        return json_response({"ok": True})

    @router.get(
        "/{machine_id}/versions",
        responses={200: {"model": list[MachineVersion]}},
        dependencies=_NO_QUERY,
    )
    def list_versions(app_name: str, machine_id: str) -> JSONResponse:
        machine = plane.machines.get(app_name, machine_id)
        return json_response(plane.store.list_machine_versions(machine.id))

    @router.get(
        "/{machine_id}/ps",
        responses={200: {"model": list[ProcessStat]}},
        dependencies=[Depends(allow_query("sort_by", "order"))],
    )
    def list_processes(
        app_name: str, machine_id: str, sort_by: str = "pid", order: str = "asc"
    ) -> JSONResponse:
        if sort_by not in PS_SORT_KEYS:
            raise ValidationError(
                f"sort_by={sort_by!r} is not a process field",
                hint="use one of " + ", ".join(PS_SORT_KEYS),
            )
        if order not in PS_ORDERS:
            raise ValidationError(f"order={order!r} is not asc or desc", hint="use asc or desc")
        machine = plane.machines.get(app_name, machine_id)
        processes, age = plane.processes.latest(machine)
        response = json_response(sort_processes(processes, sort_by, order))
        response.headers[PS_AGE_HEADER] = f"{age:.1f}"
        return response

    return router
