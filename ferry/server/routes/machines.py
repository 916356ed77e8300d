"""``/v1/apps/{app}/machines``: the Machines API (create, update, lifecycle, wait, events, logs)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ferry.errors import ConflictError, ValidationError
from ferry.model import Machine, MachineEvent, MachineState
from ferry.server.context import ControlPlane, json_response
from ferry.server.errors import error_response
from ferry.server.schemas import (
    CreateMachineRequest,
    SignalRequest,
    StopRequest,
    UpdateMachineRequest,
    normalize_signal,
)

__all__ = ["build_router"]

_OK = {"ok": True}


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

    @router.post("", responses={200: {"model": Machine}})
    def create_machine(app_name: str, body: CreateMachineRequest) -> JSONResponse:
        """Fly's create; with ``region_fallback`` (Ferry-only) a full region sends the machine
        to the nearest region with room and the answer carries ``placement_note``."""
        created = machines.create(app_name, body)
        answer = created.model_dump(mode="json")
        note = next((e.request.get("placement_note") for e in created.events), None)
        if note:
            answer["placement_note"] = note
        return json_response(answer)

    @router.get("", responses={200: {"model": list[Machine]}})
    def list_machines(
        app_name: str, include_deleted: bool = False, region: str | None = None
    ) -> JSONResponse:
        found = machines.list(app_name, include_deleted=include_deleted, region=region or None)
        return json_response(found)

    @router.get("/{machine_id}", responses={200: {"model": Machine}})
    def get_machine(app_name: str, machine_id: str) -> JSONResponse:
        return json_response(machines.get(app_name, machine_id, with_events=True))

    @router.post("/{machine_id}", responses={200: {"model": Machine}})
    def update_machine(app_name: str, machine_id: str, body: UpdateMachineRequest) -> JSONResponse:
        return json_response(machines.update(app_name, machine_id, body))

    @router.delete("/{machine_id}")
    def destroy_machine(app_name: str, machine_id: str, force: bool = False) -> JSONResponse:
        machines.destroy(app_name, machine_id, force=force)
        return json_response(_OK)

    @router.post("/{machine_id}/start")
    def start_machine(app_name: str, machine_id: str) -> JSONResponse:
        previous = machines.start(app_name, machine_id)
        return json_response({"previous_state": previous.value})

    @router.post("/{machine_id}/stop")
    def stop_machine(
        app_name: str, machine_id: str, body: StopRequest | None = None
    ) -> JSONResponse:
        body = body or StopRequest()
        machines.stop(app_name, machine_id, signal=body.signal, timeout=body.timeout)
        return json_response(_OK)

    @router.post("/{machine_id}/suspend")
    def suspend_machine(app_name: str, machine_id: str) -> JSONResponse:
        """Freeze a started machine's processes, memory kept; 409 if it is not started."""
        machines.suspend(app_name, machine_id)
        return json_response(_OK)

    @router.post("/{machine_id}/restart")
    def restart_machine(
        app_name: str, machine_id: str, signal: str | None = None, timeout: str | None = None
    ) -> JSONResponse:
        try:
            checked = normalize_signal(signal or None)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        machines.restart(app_name, machine_id, signal=checked, timeout=timeout or None)
        return json_response(_OK)

    @router.post("/{machine_id}/signal")
    def signal_machine(app_name: str, machine_id: str, body: SignalRequest) -> JSONResponse:
        machines.signal(app_name, machine_id, body.signal)
        return json_response(_OK)

    @router.get("/{machine_id}/wait")
    async def wait_for_machine(
        app_name: str,
        machine_id: str,
        state: str = "started",
        timeout: float = Query(60.0, ge=0, le=300),
        instance_id: str | None = None,
    ) -> JSONResponse:
        """Long-poll until the machine reaches ``state``; 408 on timeout. Never busy-waits."""
        target = _target_state(state)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        host_id = machines.get(app_name, machine_id).host_id
        while True:
            seen = plane.notifier.version(host_id)
            machine = machines.get(app_name, machine_id)
            if instance_id and machine.instance_id != instance_id:
                raise ConflictError(
                    f"machine {machine_id} is now at version {machine.instance_id}, "
                    f"not {instance_id}",
                    hint="wait for the current version instead",
                )
            if machine.state is target:
                return json_response({"ok": True, "state": target.value})
            if target is MachineState.STARTED and machine.state in (
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
                    f"timeout waiting for machine {machine_id} to be {target.value} "
                    f"(it is {machine.state.value})",
                    "wait longer, or look at its events and logs",
                )
            await plane.notifier.wait(host_id, seen, remaining)

    @router.get("/{machine_id}/events", responses={200: {"model": list[MachineEvent]}})
    def list_events(app_name: str, machine_id: str) -> JSONResponse:
        machine = machines.get(app_name, machine_id)
        return json_response(plane.store.list_events(machine.id))

    @router.get("/{machine_id}/logs")
    def machine_logs(
        app_name: str, machine_id: str, tail: int = Query(200, ge=1, le=1000)
    ) -> JSONResponse:
        machine = machines.get(app_name, machine_id)
        return json_response({"lines": plane.store.tail_logs(machine.id, tail)})

    return router
