"""``/v1/apps/{app}/machines``: the Machines API (create, update, lifecycle, wait, events, logs).

Every route declares its query parameters (``allow_query``): any other is
answered 400 naming it. Changes to a machine (update, start, stop, restart,
signal, delete) honour its lease: with a live lease they need its nonce in
``fly-machine-lease-nonce`` (``LeaseService.require``). Leases, metadata,
cordon, versions and ps are in ``machine_extras.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ferry.errors import ConflictError, ValidationError
from ferry.model import Machine, MachineEvent, MachineState
from ferry.server.auth import principal_of
from ferry.server.context import ControlPlane, json_response
from ferry.server.errors import error_response
from ferry.server.openapi import LogLines, MachineSummary, Ok, PreviousState, WaitResult
from ferry.server.query_params import allow_query, metadata_filters
from ferry.server.routes import machine_extras
from ferry.server.schemas import (
    CreateMachineRequest,
    SignalRequest,
    StopRequest,
    UpdateMachineRequest,
    normalize_signal,
)

__all__ = ["build_router"]

_OK = {"ok": True}
_OK_BODY: dict[int | str, dict[str, Any]] = {200: {"model": Ok}}
#: Fly's ``?summary=true`` leaves these out of each machine.
_NOT_IN_SUMMARY = {"config", "checks", "events"}
Nonce = machine_extras.NONCE


def _states(value: str | None) -> set[MachineState] | None:
    """``?state=started,stopped`` → those states (``None``: no filter)."""
    if not value:
        return None
    return {_target_state(name.strip()) for name in value.split(",") if name.strip()}


def _target_state(name: str) -> MachineState:
    try:
        return MachineState(name)
    except ValueError:
        known = ", ".join(s.value for s in MachineState)
        raise ValidationError(
            f"unknown machine state {name!r}", hint=f"use one of: {known}"
        ) from None


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(prefix="/v1/apps/{app_name}/machines", tags=["machines"])
    machines = plane.machines

    @router.post("", responses={200: {"model": Machine}}, dependencies=[Depends(allow_query())])
    def create_machine(request: Request, app_name: str, body: CreateMachineRequest) -> JSONResponse:
        """Fly's create; with ``region_fallback`` (Ferry-only) a full region sends the machine
        to the nearest region with room and the answer carries ``placement_note``. With
        ``lease_ttl`` the machine is created holding a lease, whose nonce is the answer's
        ``nonce`` (as Fly answers)."""
        created = machines.create(app_name, body)
        answer = created.model_dump(mode="json")
        note = next((e.request.get("placement_note") for e in created.events), None)
        if note:
            answer["placement_note"] = note
        if body.lease_ttl:
            lease = plane.leases.acquire(
                app_name,
                created.id,
                nonce=None,
                ttl=body.lease_ttl,
                description=None,
                owner=principal_of(request).who,
            )
            answer["nonce"] = lease.nonce
        return json_response(answer)

    @router.get(
        "",
        responses={200: {"model": list[Machine] | list[MachineSummary]}},
        dependencies=[
            Depends(allow_query("include_deleted", "region", "summary", "state", "metadata.*"))
        ],
    )
    def list_machines(
        request: Request,
        app_name: str,
        include_deleted: bool = False,
        region: str | None = None,
        summary: bool = False,
        state: str | None = None,
    ) -> JSONResponse:
        """Fly's list: ``metadata.KEY=VALUE`` keeps machines whose metadata has that
        value (all pairs must match); ``state`` is a comma list; ``summary`` leaves out
        config, checks and events."""
        wanted = metadata_filters(request.query_params.multi_items())
        states = _states(state)
        found = [
            m
            for m in machines.list(app_name, include_deleted=include_deleted, region=region or None)
            if all(m.config.metadata.get(k) == v for k, v in wanted.items())
            and (states is None or m.state in states)
        ]
        if not summary:
            return json_response(found)
        brief: list[dict[str, Any]] = [
            m.model_dump(mode="json", exclude=_NOT_IN_SUMMARY) for m in found
        ]
        return json_response(brief)

    @router.get(
        "/{machine_id}", responses={200: {"model": Machine}}, dependencies=[Depends(allow_query())]
    )
    def get_machine(app_name: str, machine_id: str) -> JSONResponse:
        return json_response(machines.get(app_name, machine_id, with_events=True))

    @router.post(
        "/{machine_id}", responses={200: {"model": Machine}}, dependencies=[Depends(allow_query())]
    )
    def update_machine(
        app_name: str, machine_id: str, body: UpdateMachineRequest, nonce: str | None = Nonce
    ) -> JSONResponse:
        plane.leases.require(app_name, machine_id, nonce)
        return json_response(machines.update(app_name, machine_id, body))

    @router.delete(
        "/{machine_id}", responses=_OK_BODY, dependencies=[Depends(allow_query("force", "kill"))]
    )
    def destroy_machine(
        app_name: str,
        machine_id: str,
        force: bool = False,
        kill: bool = False,
        nonce: str | None = Nonce,
    ) -> JSONResponse:
        """``force`` or ``kill`` (fly-go's name): destroy even a running machine."""
        plane.leases.require(app_name, machine_id, nonce)
        machines.destroy(app_name, machine_id, force=force or kill)
        return json_response(_OK)

    @router.post(
        "/{machine_id}/start",
        responses={200: {"model": PreviousState}},
        dependencies=[Depends(allow_query())],
    )
    def start_machine(app_name: str, machine_id: str, nonce: str | None = Nonce) -> JSONResponse:
        plane.leases.require(app_name, machine_id, nonce)
        previous = machines.start(app_name, machine_id)
        return json_response({"previous_state": previous.value})

    @router.post("/{machine_id}/stop", responses=_OK_BODY, dependencies=[Depends(allow_query())])
    def stop_machine(
        app_name: str,
        machine_id: str,
        body: StopRequest | None = None,
        nonce: str | None = Nonce,
    ) -> JSONResponse:
        plane.leases.require(app_name, machine_id, nonce)
        body = body or StopRequest()
        machines.stop(app_name, machine_id, signal=body.signal, timeout=body.timeout)
        return json_response(_OK)

    @router.post("/{machine_id}/suspend", responses=_OK_BODY, dependencies=[Depends(allow_query())])
    def suspend_machine(app_name: str, machine_id: str, nonce: str | None = Nonce) -> JSONResponse:
        """Freeze a started machine's processes, memory kept; 409 if it is not started."""
        plane.leases.require(app_name, machine_id, nonce)
        machines.suspend(app_name, machine_id)
        return json_response(_OK)

    @router.post(
        "/{machine_id}/restart",
        responses=_OK_BODY,
        dependencies=[Depends(allow_query("signal", "timeout", "force_stop"))],
    )
    def restart_machine(
        app_name: str,
        machine_id: str,
        signal: str | None = None,
        timeout: str | None = None,
        force_stop: bool = False,
        nonce: str | None = Nonce,
    ) -> JSONResponse:
        """``force_stop=true`` (Fly's) stops the old process with SIGKILL at once."""
        try:
            checked = normalize_signal(signal or None)
        except ValueError as exc:
            raise ValidationError(f"query parameter signal: {exc}") from None
        if force_stop:
            if checked not in (None, "SIGKILL"):
                raise ValidationError(
                    f"force_stop=true kills with SIGKILL; it cannot be combined with "
                    f"signal={signal}",
                    hint="drop one of force_stop and signal",
                )
            checked = "SIGKILL"
        plane.leases.require(app_name, machine_id, nonce)
        machines.restart(app_name, machine_id, signal=checked, timeout=timeout or None)
        return json_response(_OK)

    @router.post("/{machine_id}/signal", responses=_OK_BODY, dependencies=[Depends(allow_query())])
    def signal_machine(
        app_name: str, machine_id: str, body: SignalRequest, nonce: str | None = Nonce
    ) -> JSONResponse:
        plane.leases.require(app_name, machine_id, nonce)
        machines.signal(app_name, machine_id, body.signal)
        return json_response(_OK)

    @router.get(
        "/{machine_id}/wait",
        responses={200: {"model": WaitResult}},
        dependencies=[
            Depends(allow_query("state", "timeout", "instance_id", "version", "from_event_id"))
        ],
    )
    async def wait_for_machine(
        app_name: str,
        machine_id: str,
        state: list[str] = Query(["started"]),
        timeout: float = Query(60.0, ge=0, le=300),
        instance_id: str | None = None,
        version: str | None = None,
        from_event_id: str | None = None,
    ) -> JSONResponse:
        """Long-poll until the machine reaches one of ``state`` (repeatable, as fly-go sends
        it); 408 on timeout. ``version`` is fly-go's name for ``instance_id``. Never busy-waits."""
        if from_event_id is not None:
            raise ValidationError(
                "query parameter from_event_id is not supported yet",
                hint="wait by state and instance_id (or version) instead",
            )
        if instance_id and version and instance_id != version:
            raise ValidationError(
                f"query parameters instance_id={instance_id} and version={version} disagree",
                hint="give one of them",
            )
        wanted_instance = instance_id or version
        targets = _states(",".join(state)) or {MachineState.STARTED}
        names = " or ".join(sorted(t.value for t in targets))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        host_id = machines.get(app_name, machine_id).host_id
        while True:
            seen = plane.notifier.version(host_id)
            machine = machines.get(app_name, machine_id)
            if wanted_instance and machine.instance_id != wanted_instance:
                raise ConflictError(
                    f"machine {machine_id} is now at version {machine.instance_id}, "
                    f"not {wanted_instance}",
                    hint="wait for the current version instead",
                )
            if machine.state in targets:
                return json_response({"ok": True, "state": machine.state.value})
            if MachineState.STARTED in targets and machine.state in (
                MachineState.FAILED,
                MachineState.DESTROYED,
            ):
                code = f" (exit code {machine.exit_code})" if machine.exit_code is not None else ""
                raise ConflictError(
                    f"machine {machine_id} is {machine.state.value}{code}; "
                    "it will not become started",
                    hint=f"see `ferry machine status {machine_id}` and its logs",
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                return error_response(
                    408,
                    f"timeout waiting for machine {machine_id} to be {names} "
                    f"(it is {machine.state.value})",
                    "wait longer, or look at its events and logs",
                )
            await plane.notifier.wait(host_id, seen, remaining)

    @router.get(
        "/{machine_id}/events",
        responses={200: {"model": list[MachineEvent]}},
        dependencies=[Depends(allow_query())],
    )
    def list_events(app_name: str, machine_id: str) -> JSONResponse:
        machine = machines.get(app_name, machine_id)
        return json_response(plane.store.list_events(machine.id))

    @router.get(
        "/{machine_id}/logs",
        responses={200: {"model": LogLines}},
        dependencies=[Depends(allow_query("tail"))],
    )
    def machine_logs(
        app_name: str, machine_id: str, tail: int = Query(200, ge=1, le=1000)
    ) -> JSONResponse:
        machine = machines.get(app_name, machine_id)
        return json_response({"lines": plane.store.tail_logs(machine.id, tail)})

    router.include_router(machine_extras.build_router(plane))
    return router
