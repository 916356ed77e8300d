"""``/v1/apps/{app}/secrets``: set, unset, list and deploy an app's secrets (Fly's shapes);
``/v1/hosts/{host}/machines/{id}/secrets``: the values, for that host's agent only.

Answers carry names, digests and dates, never a value; the one route that
returns values is host-scoped (``ferry.server.authz``: only that host's
credential, or the operator, may call it) and refuses machines of other hosts.
A change without ``stage`` rolls the app's machines (``SecretsRollout``) and
answers when every machine runs with it, or at once with ``detach``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ferry.errors import ConflictError
from ferry.model.secrets import AppSecrets
from ferry.secrets import MAX_SECRETS_PER_APP
from ferry.server.context import ControlPlane, json_response
from ferry.server.openapi import MachineEnv
from ferry.server.secrets_rollout import RolloutStatus

__all__ = ["build_router"]


class SetSecretsRequest(BaseModel):
    """``values``: name -> value to set, or ``null`` to unset (as Fly's API takes them)."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, str | None] = Field(min_length=1, max_length=MAX_SECRETS_PER_APP)
    stage: bool = False
    detach: bool = False


class DeploySecretsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detach: bool = False


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["secrets"])
    service = plane.secrets
    rollouts = plane.secrets_rollouts

    async def answer(app_name: str, rollout: RolloutStatus | None) -> JSONResponse:
        versions, infos = await run_in_threadpool(service.list, app_name)
        rollout = rollout or rollouts.latest(app_name)
        body = AppSecrets(
            secrets=infos,
            version=versions.version,
            deployed=versions.deployed,
            rollout=None if rollout is None else rollout.model(),
        )
        return json_response(body)

    async def roll(app_name: str, version: int, detach: bool) -> RolloutStatus:
        task = await rollouts.start(app_name, version)
        if detach:
            return rollouts.latest(app_name) or RolloutStatus(app_name, version)
        # shield: a client that hangs up does not cancel the roll half-way.
        return await asyncio.shield(task)

    @router.get("/v1/apps/{app_name}/secrets", responses={200: {"model": AppSecrets}})
    async def list_secrets(app_name: str) -> JSONResponse:
        """Names, digests, dates and whether each is staged; never values."""
        return await answer(app_name, None)

    @router.post("/v1/apps/{app_name}/secrets", responses={200: {"model": AppSecrets}})
    async def set_secrets(app_name: str, body: SetSecretsRequest) -> JSONResponse:
        """Set (and, with ``null`` values, unset) secrets in one change; then roll the app's
        machines unless ``stage``. 400 names a bad name or value; nothing is stored."""
        versions = await run_in_threadpool(service.change, app_name, body.values)
        rollout = None if body.stage else await roll(app_name, versions.version, body.detach)
        return await answer(app_name, rollout)

    @router.delete("/v1/apps/{app_name}/secrets/{name}", responses={200: {"model": AppSecrets}})
    async def unset_secret(
        app_name: str, name: str, stage: bool = Query(False), detach: bool = Query(False)
    ) -> JSONResponse:
        """Unset one secret (404 if it is not set); rolls as ``POST`` does."""
        versions = await run_in_threadpool(service.change, app_name, {name: None})
        rollout = None if stage else await roll(app_name, versions.version, detach)
        return await answer(app_name, rollout)

    @router.post("/v1/apps/{app_name}/secrets/deploy", responses={200: {"model": AppSecrets}})
    async def deploy_secrets(app_name: str, body: DeploySecretsRequest) -> JSONResponse:
        """Roll the app's machines onto its staged secrets; 409 when nothing is staged."""
        versions, _infos = await run_in_threadpool(service.list, app_name)
        if not versions.staged:
            raise ConflictError(
                f"app {app_name} has no staged secrets: its machines run with the current ones",
                hint="stage changes with `ferry secrets set --stage` first",
            )
        return await answer(app_name, await roll(app_name, versions.version, body.detach))

    @router.get(
        "/v1/hosts/{host_id}/machines/{machine_id}/secrets", responses={200: {"model": MachineEnv}}
    )
    def machine_secrets(host_id: str, machine_id: str) -> JSONResponse:
        """The app's secrets in plain text for a machine of this host, as ``{"env": {…}}``
        (the agent adds them to the container's environment). 404 for another host's."""
        machine, env = service.machine_env(host_id, machine_id)
        return json_response({"app_name": machine.app_name, "env": env})

    return router
