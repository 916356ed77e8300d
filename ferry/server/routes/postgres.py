"""Ferry-only routes for Postgres (docs/postgres.md):

- ``/v1/apps/{app}/postgres``: the app's ``[postgres]`` section (the Postgres cluster it
  uses and whether that cluster's replicas follow it) and what the follow loop did;
- ``GET /v1/platform/room``: whether a region has room for one more member (its volume
  and its machine), which ``ferry postgres create`` asks before it makes anything.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ferry.errors import NotFoundError, ValidationError
from ferry.model.postgres_follow import FollowPolicy
from ferry.postgres import plan
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import PolicyDeleted, error_responses
from ferry.server.room import check_room

__all__ = ["FollowStatus", "RoomAnswer", "build_router"]


class FollowStatus(BaseModel):
    """``GET …/postgres/status``: the policy and the follow loop's last view of its database."""

    model_config = ConfigDict(extra="allow")
    app: str
    policy: FollowPolicy | None
    last_reason: str = ""
    actions: list[dict[str, Any]] = []


class RoomAnswer(BaseModel):
    """``GET /v1/platform/room``: the host of ``region`` that would take the member."""

    model_config = ConfigDict(extra="allow")
    region: str
    host_id: str


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["postgres"])
    prefix = "/v1/apps/{app_name}/postgres"

    def check_database(app_name: str, database: str) -> None:
        """``ValidationError`` (400, nothing stored) unless ``database`` is a Ferry Postgres
        cluster of the app's own organization, other than the app itself."""
        app = plane.store.get_app(app_name)
        hint = "give the name of a cluster made by `ferry postgres create` in this organization"
        if database == app_name:
            raise ValidationError(f"{app_name} cannot follow itself as its database", hint=hint)
        try:
            target = plane.store.get_app(database)
        except NotFoundError:
            target = None
        # Another organization's app is reported like a missing one: its name stays private.
        if target is None or target.organization.slug != app.organization.slug:
            raise ValidationError(f"there is no Postgres app {database!r}", hint=hint)
        machines = plane.store.list_machines(app_name=database, include_destroyed=False)
        if not any(m.config.metadata.get(plan.MEMBER_METADATA) for m in machines):
            raise ValidationError(
                f"{database} is not a Ferry Postgres cluster (no member machines)", hint=hint
            )

    @router.get(prefix, responses={200: {"model": FollowPolicy}})
    def get_policy(app_name: str) -> JSONResponse:
        plane.store.get_app(app_name)
        policy = plane.store.get_follow_policy(app_name)
        if policy is None:
            raise NotFoundError(
                f"app {app_name!r} has no [postgres] section",
                hint="add one to fly.toml and run `ferry deploy` (see docs/postgres.md)",
            )
        return json_response(policy)

    @router.put(prefix, responses={200: {"model": FollowPolicy}})
    def put_policy(app_name: str, body: FollowPolicy) -> JSONResponse:
        """Store (replace) the policy; idempotent. The next follow cycle uses it."""
        check_database(app_name, body.database)
        plane.store.set_follow_policy(app_name, body)
        return json_response(body)

    @router.delete(prefix, responses={200: {"model": PolicyDeleted}})
    def delete_policy(app_name: str) -> JSONResponse:
        """Forget the policy; replicas it made stay (see docs/postgres.md). Idempotent."""
        plane.store.get_app(app_name)
        return json_response({"ok": True, "deleted": plane.store.delete_follow_policy(app_name)})

    @router.get(prefix + "/status", responses={200: {"model": FollowStatus}})
    def follow_status(app_name: str) -> JSONResponse:
        """The policy and what the follow loop last saw and did for its database."""
        plane.store.get_app(app_name)
        policy = plane.store.get_follow_policy(app_name)
        seen = plane.pg_follow.status(policy.database) if policy else {}
        return json_response({"app": app_name, "policy": policy, **seen})

    @router.get("/v1/platform/room", responses={200: {"model": RoomAnswer}, **error_responses(422)})
    def room(
        region: str,
        size_gb: int = 1,
        cpus: int = Query(1, ge=1, le=64),
        memory_mb: int = Query(256, ge=1),
    ) -> JSONResponse:
        """The host that has room for a ``size_gb`` volume and a machine of ``cpus`` and
        ``memory_mb`` in ``region``; 422 naming the region and the shortfall otherwise.
        Reserves nothing: a create right after can still find the room taken."""
        found = check_room(
            region,
            size_gb,
            cpus,
            memory_mb,
            plane.store.list_hosts(),
            plane.store.list_machines(include_destroyed=False),
            plane.store.list_volumes(),
            plane.store.volume_capacities(),
        )
        return json_response({"region": found.region, "host_id": found.host_id})

    return router
