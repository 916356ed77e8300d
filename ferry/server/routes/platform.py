"""``/v1/platform``: regions and cluster info; ``/healthz`` (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

import ferry
from ferry.model import REGION_NAMES, Region
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import Ok, PlatformInfo, RegionList
from ferry.server.placement import known_regions

__all__ = ["build_public_router", "build_router"]


def build_public_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/healthz", responses={200: {"model": Ok}})
    def healthz() -> JSONResponse:
        return json_response({"ok": True})

    return router


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/platform", tags=["platform"])

    def regions() -> list[Region]:
        codes = known_regions(plane.store.list_hosts())
        return [Region(code=c, name=REGION_NAMES.get(c, c)) for c in codes]

    @router.get("/regions", responses={200: {"model": RegionList}})
    def list_regions() -> JSONResponse:
        found = regions()
        return json_response({"Regions": found, "Nearest": found[0].code if found else None})

    @router.get("/info", responses={200: {"model": PlatformInfo}})
    def info() -> JSONResponse:
        return json_response(
            {
                "version": ferry.__version__,
                "registry": plane.registry,
                "regions": regions(),
                "hosts": plane.store.list_hosts(),
            }
        )

    return router
