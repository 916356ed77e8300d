"""``/v1/routes`` and ``/v1/edges``: what the edge proxies follow and report (Ferry-only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ferry.server.context import ControlPlane, json_response
from ferry.server.traffic import EdgeReport

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["edges"])

    @router.get("/v1/routes")
    async def watch_routes(
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> JSONResponse:
        """Every machine that is not destroyed nor cordoned, for the proxies' routing tables.

        A cordoned machine (Fly's cordon) is left out, so no edge sends it new
        requests, nor wakes it; uncordon puts it back at the next write.

        Long-polls like the hosts' watch: answers at once when ``since`` is 0,
        behind or ahead of the store's resource version, else waits up to
        ``timeout`` for any machine write, then answers the snapshot anyway.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = plane.notifier.version(None)
            version = plane.store.resource_version()
            remaining = deadline - loop.time()
            if since == 0 or version != since or remaining <= 0:
                machines = [
                    m for m in plane.store.list_machines(include_destroyed=False) if not m.cordoned
                ]
                return json_response({"resource_version": version, "machines": machines})
            await plane.notifier.wait(None, seen, remaining)

    @router.post("/v1/edges/{region}/traffic")
    def report_traffic(region: str, body: EdgeReport) -> JSONResponse:
        plane.traffic.record(region, body)
        return json_response({"ok": True})

    @router.get("/v1/apps/{app_name}/traffic")
    def app_traffic(app_name: str) -> JSONResponse:
        plane.store.get_app(app_name)
        return json_response({"app": app_name, "edges": plane.traffic.for_app(app_name)})

    return router
