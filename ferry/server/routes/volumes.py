"""``/v1/apps/{app_name}/volumes``: Fly's Volumes resource, and
``/v1/hosts/{host_id}/volumes``: what each host's agent keeps and reports
(see ``ferry.server.volumes_service``)."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from fastapi import APIRouter, Body, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from starlette.concurrency import run_in_threadpool

from ferry.model.refusals import REQUEST_CONTEXT
from ferry.model.volume import (
    CreateVolumeRequest,
    ExtendVolumeRequest,
    ExtendVolumeResponse,
    HostVolumeReport,
    HostVolumes,
    UpdateVolumeRequest,
    Volume,
    VolumeSnapshot,
)
from ferry.server.audit import note_audit
from ferry.server.context import ControlPlane, json_response

__all__ = ["build_router", "strict_body"]

_M = TypeVar("_M", bound=BaseModel)
_BINARY = {"type": "string", "format": "binary"}


def strict_body(model: type[_M], body: object) -> _M:
    """``body`` parsed as a Fly request: unknown and refused fields named in a 400."""
    try:
        return model.model_validate(body, context={REQUEST_CONTEXT: True})
    except PydanticValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["volumes"])
    volumes = plane.volumes
    path = "/v1/apps/{app_name}/volumes"
    one = path + "/{volume_id}"

    @router.post(path, status_code=200, responses={200: {"model": Volume}})
    def create_volume(
        request: Request, app_name: str, body: dict[str, Any] = Body(...)
    ) -> JSONResponse:
        """A new volume on a host of its region with room (Fly answers 200)."""
        created = volumes.create(app_name, strict_body(CreateVolumeRequest, body))
        note_audit(request, app=app_name, volume=created.id, size_gb=str(created.size_gb))
        return json_response(created)

    @router.get(path, responses={200: {"model": list[Volume]}})
    def list_volumes(app_name: str, summary: bool = False) -> JSONResponse:
        return json_response(volumes.list_volumes(app_name))

    @router.get(one, responses={200: {"model": Volume}})
    def get_volume(app_name: str, volume_id: str) -> JSONResponse:
        return json_response(volumes.get(app_name, volume_id))

    @router.put(one, responses={200: {"model": Volume}})
    def update_volume(
        app_name: str, volume_id: str, body: dict[str, Any] = Body(...)
    ) -> JSONResponse:
        return json_response(
            volumes.update(app_name, volume_id, strict_body(UpdateVolumeRequest, body))
        )

    @router.delete(one, responses={200: {"model": Volume}})
    def destroy_volume(request: Request, app_name: str, volume_id: str) -> JSONResponse:
        """Only the owner's request deletes a volume; refused (409) while a machine uses it."""
        gone = volumes.destroy(app_name, volume_id)
        note_audit(request, app=app_name, volume=volume_id)
        return json_response(gone)

    @router.put(one + "/extend", responses={200: {"model": ExtendVolumeResponse}})
    def extend_volume(
        request: Request, app_name: str, volume_id: str, body: dict[str, Any] = Body(...)
    ) -> JSONResponse:
        wanted = strict_body(ExtendVolumeRequest, body)
        grown = volumes.extend(app_name, volume_id, wanted.size_gb)
        note_audit(request, app=app_name, volume=volume_id, size_gb=str(wanted.size_gb))
        return json_response(grown)

    @router.get(one + "/snapshots", responses={200: {"model": list[VolumeSnapshot]}})
    def list_snapshots(app_name: str, volume_id: str) -> JSONResponse:
        return json_response(volumes.list_snapshots(app_name, volume_id))

    @router.post(one + "/snapshots", responses={200: {"model": VolumeSnapshot}})
    def create_snapshot(request: Request, app_name: str, volume_id: str) -> JSONResponse:
        made = volumes.create_snapshot(app_name, volume_id)
        note_audit(request, app=app_name, volume=volume_id, snapshot=made.id)
        return json_response(made)

    @router.get("/v1/hosts/{host_id}/volumes", responses={200: {"model": HostVolumes}})
    async def host_volumes(
        host_id: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(0.0, ge=0, le=60),
    ) -> JSONResponse:
        """(Agents) The host's volumes and snapshots to keep, forks' copies to move.
        Long-polls: answers at once when ``since`` is 0 or not the view's ``version``,
        else when the view changes or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = volumes.changes.version(None)  # before the read: no change is missed
            view = await run_in_threadpool(volumes.for_host, host_id)
            remaining = deadline - loop.time()
            if since == 0 or view.version != since or remaining <= 0:
                return json_response(view)
            await volumes.changes.wait(None, seen, remaining)

    @router.put("/v1/hosts/{host_id}/snapshots/{snapshot_id}/export", status_code=204)
    async def export_snapshot(request: Request, host_id: str, snapshot_id: str) -> None:
        """(Agents) The frames of a snapshot a fork on another host waits for
        (``ferry.storage.transfer``); kept until that fork has it."""
        target = await run_in_threadpool(volumes.check_export, host_id, snapshot_id)
        partial = target.with_suffix(".partial")
        handle = await run_in_threadpool(open, partial, "wb")
        try:
            async for chunk in request.stream():
                await run_in_threadpool(handle.write, chunk)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        handle.close()
        partial.rename(target)
        volumes.copy_arrived(snapshot_id)

    @router.get(
        "/v1/hosts/{host_id}/snapshots/{snapshot_id}/import",
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {"schema": _BINARY}}}},
    )
    def import_snapshot(host_id: str, snapshot_id: str) -> FileResponse:
        """(Agents) The frames of the snapshot a fork on this host needs."""
        return FileResponse(
            volumes.check_import(host_id, snapshot_id), media_type="application/octet-stream"
        )

    @router.post("/v1/hosts/{host_id}/volumes/report", status_code=204)
    def host_volume_report(host_id: str, body: HostVolumeReport) -> None:
        """(Agents) Capacity, volume states and figures, snapshot statuses."""
        volumes.report(host_id, body)

    return router
