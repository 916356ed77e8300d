"""``/v1/apps/{app}/autoscale``: the app's ``[autoscale]`` policy and what the autoscaler did
(Ferry-only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ferry.autoscale.decisions import is_running, is_stopped
from ferry.errors import NotFoundError
from ferry.model.autoscale import AutoscalePolicy
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import AutoscaleStatus, PolicyDeleted

__all__ = ["build_router"]


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/apps/{app_name}/autoscale", tags=["autoscale"])

    @router.get("", responses={200: {"model": AutoscalePolicy}})
    def get_policy(app_name: str) -> JSONResponse:
        plane.store.get_app(app_name)
        policy = plane.store.get_autoscale_policy(app_name)
        if policy is None:
            raise NotFoundError(
                f"app {app_name!r} has no autoscale policy",
                hint="add an [autoscale] section to fly.toml and run `ferry deploy`",
            )
        return json_response(policy)

    @router.put("", responses={200: {"model": AutoscalePolicy}})
    def put_policy(app_name: str, body: AutoscalePolicy) -> JSONResponse:
        """Store (replace) the policy; idempotent. The next autoscaler cycle uses it."""
        plane.store.set_autoscale_policy(app_name, body)
        return json_response(body)

    @router.delete("", responses={200: {"model": PolicyDeleted}})
    def delete_policy(app_name: str) -> JSONResponse:
        """Remove the policy (only Fly's idle autostop then acts); idempotent."""
        plane.store.get_app(app_name)
        return json_response({"ok": True, "deleted": plane.store.delete_autoscale_policy(app_name)})

    @router.get("/status", responses={200: {"model": AutoscaleStatus}})
    def autoscale_status(app_name: str) -> JSONResponse:
        """The policy, machines and demand per region, and the last decisions (newest first)."""
        plane.store.get_app(app_name)
        policy = plane.store.get_autoscale_policy(app_name)
        seen = plane.autoscaler.status(app_name)
        machines = plane.store.list_machines(app_name=app_name, include_destroyed=False)
        regions: dict[str, dict[str, Any]] = {}
        for name in sorted({m.region for m in machines} | set(seen["regions"])):
            here = [m for m in machines if m.region == name]
            figures = seen["regions"].get(name, {})
            regions[name] = {
                "started": sum(1 for m in here if is_running(m)),
                "stopped": sum(1 for m in here if is_stopped(m)),
                "desired": figures.get("desired"),
                "rate": figures.get("rate", 0.0),
                "concurrency": figures.get("concurrency", 0.0),
                "unserved_rate": figures.get("unserved_rate", 0.0),
            }
        return json_response(
            {
                "app": app_name,
                "policy": policy,
                "enabled": bool(policy and policy.enabled),
                **seen,
                "regions": regions,
            }
        )

    return router
