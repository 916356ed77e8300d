"""``/v1/routes`` and ``/v1/edges``: what the edge proxies follow and report (Ferry-only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from ferry.errors import NotFoundError, ValidationError
from ferry.server.context import ControlPlane, json_bytes, json_response
from ferry.server.feeds import Memo, NotifiedVersion
from ferry.server.openapi import AppTraffic, MachinesWatch, Ok
from ferry.server.placement import known_regions
from ferry.server.traffic import EdgeReport, unknown_in_report

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["edges"])

    def routes_body(version: int) -> bytes:
        machines = [m for m in plane.store.list_machines(include_destroyed=False) if not m.cordoned]
        return json_bytes({"resource_version": version, "machines": machines})

    # every edge polls this after every machine write: read and encoded once per version
    routes = Memo(
        NotifiedVersion(plane.store.resource_version, plane.notifier.version), routes_body
    )

    @router.get("/v1/routes", responses={200: {"model": MachinesWatch}})
    async def watch_routes(
        since: int = Query(0, ge=0),
        timeout: float = Query(30.0, ge=0, le=60),
    ) -> Response:
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
            version, body = await asyncio.to_thread(routes.current)
            remaining = deadline - loop.time()
            if since == 0 or version != since or remaining <= 0:
                return Response(body, media_type="application/json")
            await plane.notifier.wait(None, seen, remaining)

    def machines_of(app: str) -> set[str] | None:
        try:
            plane.store.get_app(app)
        except NotFoundError:
            return None
        return {m.id for m in plane.store.list_machines(app_name=app, include_destroyed=True)}

    @router.post("/v1/edges/{region}/traffic", responses={200: {"model": Ok}})
    def report_traffic(region: str, body: EdgeReport) -> JSONResponse:
        """Keep an edge's latest report. 404 for a region no host registered in, 400 for a
        report naming apps or machines the store does not know; nothing is kept then."""
        regions = known_regions(plane.store.list_hosts())
        if region not in regions:
            raise NotFoundError(
                f"unknown region {region!r}; known regions: {', '.join(regions) or 'none'}",
                hint="an edge reports for a region where hosts are registered",
            )
        problem = unknown_in_report(body, machines_of)
        if problem is not None:
            raise ValidationError(
                f"traffic report from {region} refused: {problem}",
                hint="report only the apps and machines of the edge's routing table",
            )
        plane.traffic.record(region, body)
        return json_response({"ok": True})

    @router.get("/v1/apps/{app_name}/traffic", responses={200: {"model": AppTraffic}})
    def app_traffic(app_name: str) -> JSONResponse:
        plane.store.get_app(app_name)
        return json_response({"app": app_name, "edges": plane.traffic.for_app(app_name)})

    return router
