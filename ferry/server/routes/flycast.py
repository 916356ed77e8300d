"""``/v1/apps/{app}/ip_assignments``: an app's Flycast addresses, in the shapes of Fly's
Machines API (``ferry.model.flycast``), and ``/v1/edges/{region}/flycast``: every
Flycast address, for the edges that serve them (see ``ferry.server.flycast_service``).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ferry.model.flycast import (
    AssignIPRequest,
    FlycastFeed,
    FlycastFeedEntry,
    IPAssignment,
    IPAssignmentList,
)
from ferry.server.audit import note_audit
from ferry.server.context import ControlPlane, json_response
from ferry.server.feeds import Feed, NotifiedVersion

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["ips"])
    ips = plane.flycast
    path = "/v1/apps/{app_name}/ip_assignments"

    @router.get(path, responses={200: {"model": IPAssignmentList}})
    def list_ips(app_name: str) -> JSONResponse:
        """The app's addresses (Flycast ones: Ferry assigns no public address)."""
        return json_response(IPAssignmentList(ips=ips.list_ips(app_name)))

    @router.post(path, status_code=201, responses={201: {"model": IPAssignment}})
    def assign_ip(request: Request, app_name: str, body: AssignIPRequest) -> JSONResponse:
        """A new address: ``type`` must be ``private_v6`` (Flycast)."""
        created = ips.assign(app_name, body)
        note_audit(request, ip=created.ip)
        return json_response(created, 201)

    @router.delete(path + "/{ip}", responses={200: {"model": IPAssignment}})
    def release_ip(request: Request, app_name: str, ip: str) -> JSONResponse:
        released = ips.release(app_name, ip)
        note_audit(request, ip=released.ip)
        return json_response(released)

    # One computation per store version for every edge, answered only when it changed
    # (as the mesh's feeds, ferry.server.feeds).
    feed: Feed[list[FlycastFeedEntry]] = Feed(
        NotifiedVersion(plane.mesh.version, plane.notifier.version),
        lambda: ips.feed(0).addresses,
        fingerprint=lambda addresses: addresses,
    )

    @router.get("/v1/edges/{region}/flycast", responses={200: {"model": FlycastFeed}})
    async def watch_flycast(
        region: str,
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> JSONResponse:
        """Every Flycast address the edges serve (an edge's credential); long-polls like
        ``/v1/mesh``: at once when ``since`` is 0 or stale, else on a change or ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = plane.notifier.version(None)
            state = await run_in_threadpool(feed.current)
            remaining = deadline - loop.time()
            if since == 0 or state.version != since or remaining <= 0:
                break
            await plane.notifier.wait(None, seen, remaining)
        return json_response(FlycastFeed(version=state.version, addresses=state.value))

    return router
