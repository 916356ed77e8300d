"""``/v1/hosts``: agents register, heartbeat, watch their desired state and report back."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ferry.errors import ForbiddenError
from ferry.model import Host, Machine
from ferry.model.access import TokenKind
from ferry.model.processes import ProcessReport
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import MachinesWatch, Ok
from ferry.server.schemas import LogsUpload, RegisterHostRequest, StatusReport

__all__ = ["build_router"]

_OK_BODY: dict[int | str, dict[str, Any]] = {200: {"model": Ok}}


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/hosts", tags=["hosts"])
    hosts = plane.hosts

    @router.get("", responses={200: {"model": list[Host]}})
    def list_hosts() -> JSONResponse:
        return json_response(plane.store.list_hosts())

    @router.post("", responses={200: {"model": Host}})
    def register_host(request: Request, body: RegisterHostRequest) -> JSONResponse:
        """The operator registers any host; a host's credential only its own."""
        p = principal_of(request)
        if not p.is_operator and (
            p.kind != TokenKind.HOST
            or p.host_id != body.id
            or (p.region is not None and p.region != body.region)
        ):
            raise ForbiddenError(
                f"{p.describe()} may not register host {body.id!r}",
                hint="a host registers with the credential the cluster made for it",
            )
        return json_response(hosts.register(body))

    @router.post("/{host_id}/heartbeat", responses=_OK_BODY)
    def heartbeat(host_id: str) -> JSONResponse:
        hosts.heartbeat(host_id)
        return json_response({"ok": True})

    @router.get("/{host_id}/machines", responses={200: {"model": MachinesWatch}})
    async def watch_host_machines(
        host_id: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> JSONResponse:
        """The host's desired state; long-polls while none of its machines changed after ``since``.

        Returns at once when ``since`` is 0, when one of this host's machines
        was written after ``since``, or when ``since`` is ahead of the store
        (a reset store); otherwise waits up to ``timeout`` for such a change
        and answers the current snapshot either way. No busy loop.
        """
        plane.store.get_host(host_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = plane.notifier.version(host_id)
            snapshot = plane.store.host_snapshot(host_id)
            changed = since == 0 or snapshot.host_version > since
            remaining = deadline - loop.time()
            if changed or since > snapshot.resource_version or remaining <= 0:
                return json_response(
                    {"resource_version": snapshot.resource_version, "machines": snapshot.machines}
                )
            await plane.notifier.wait(host_id, seen, remaining)

    @router.post("/{host_id}/machines/{machine_id}/status", responses={200: {"model": Machine}})
    def report_status(host_id: str, machine_id: str, body: StatusReport) -> JSONResponse:
        return json_response(hosts.report_status(host_id, machine_id, body))

    @router.post("/{host_id}/machines/{machine_id}/logs", responses=_OK_BODY)
    def upload_logs(host_id: str, machine_id: str, body: LogsUpload) -> JSONResponse:
        hosts.upload_logs(host_id, machine_id, body.lines)
        return json_response({"ok": True})

    @router.post("/{host_id}/processes", responses=_OK_BODY)
    def report_processes(host_id: str, body: ProcessReport) -> JSONResponse:
        """The processes of the host's started machines (``ferry.model.processes``).

        Refused whole (404, nothing kept) when it names a machine not assigned to the host.
        """
        for machine_id in body.machines:
            hosts.machine_of_host(host_id, machine_id)
        plane.processes.record(body)
        return json_response({"ok": True})

    return router
