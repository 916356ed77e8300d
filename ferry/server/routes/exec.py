"""Exec: ``POST /v1/apps/{app}/machines/{id}/exec`` (Fly's shape) and the agents' side of it.

- ``POST …/machines/{id}/exec`` with ``{"command": [...]}`` (or ``{"cmd": "..."}``),
  optional ``timeout`` (seconds, default 30, at most 300) and ``stdin``: runs the
  command in the started machine and answers ``{"stdout", "stderr", "exit_code"}``
  (plus ``exit_signal`` when Ferry killed it, and ``truncated`` when output went past
  1 MiB per stream). The app's writers only (``authz``: readonly tokens 403, other
  organizations 404). 409 when the machine is not started, 408 when the command ran
  past its timeout (it is killed), 504 when the host's agent did not answer in time.
- ``GET /v1/hosts/{host}/exec-requests?timeout=``: the agent's long poll for orders.
- ``POST /v1/hosts/{host}/exec-requests/{id}``: the agent's outcome of one order.

What is logged of an exec: the program's name, the machine and the exit code; the
audit trail records the same. Never the arguments, stdin or output.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ferry.errors import ConflictError, FerryError
from ferry.model import Machine, MachineState
from ferry.model.exec import ExecOrder, ExecOutcome, ExecRequest, ExecResponse
from ferry.server import tokens
from ferry.server.audit import note_audit
from ferry.server.authz import Need, NeedKind, Principal, check
from ferry.server.console_relay import AGENT_DIAL_SECONDS, send_error
from ferry.server.context import ControlPlane, json_response
from ferry.server.exec_service import CommandTimedOut
from ferry.server.ids import new_ulid
from ferry.server.openapi import ErrorBody, Ok, error_responses

__all__ = ["ANSWER_SLACK", "CONSOLE_SHELL", "build_console_router", "build_router"]

log = logging.getLogger("ferry.server.exec")

#: Seconds the API waits for the agent beyond the command's own timeout.
ANSWER_SLACK = 10.0
#: What an interactive console runs when the user names nothing (every image has ``sh``
#: that has a shell at all; flyctl's default is bash, which busybox images lack).
CONSOLE_SHELL = "sh"
_EXEC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ExecResponse},
    **error_responses(408, 409),
    504: {"model": ErrorBody, "description": "the host's agent did not answer in time"},
}


class ExecOrders(BaseModel):
    """The agent's long-poll answer: the orders it now runs."""

    requests: list[ExecOrder]


def _require_started(machine: Machine, app_name: str) -> None:
    if machine.state is not MachineState.STARTED or not machine.host_id:
        raise ConflictError(
            f"machine {machine.id} is {machine.state.value}: commands run only in a "
            "started machine",
            hint=f"start it with `ferry machine start {machine.id} -a {app_name}`",
        )


def build_router(plane: ControlPlane) -> APIRouter:
    router = APIRouter(tags=["exec"])
    broker = plane.execs

    @router.post("/v1/apps/{app_name}/machines/{machine_id}/exec", responses=_EXEC_RESPONSES)
    async def exec_in_machine(
        request: Request, app_name: str, machine_id: str, body: ExecRequest
    ) -> JSONResponse:
        """Run a command in a started machine and answer its output and exit code."""
        argv = body.argv()
        machine = plane.machines.get(app_name, machine_id)
        _require_started(machine, app_name)
        program = posixpath.basename(argv[0])
        seconds = body.seconds()
        order = ExecOrder(
            id=new_ulid(),
            machine_id=machine.id,
            instance_id=machine.instance_id,
            argv=argv,
            stdin=body.stdin or "",
            timeout=seconds,
        )
        note_audit(request, command=program)
        outcome = await broker.run(machine.host_id, order, seconds + ANSWER_SLACK)
        if outcome.error is not None:
            raise ConflictError(outcome.error, hint="see `ferry status` for the machine's state")
        log.info("exec %s in machine %s: exit %s", program, machine.id, outcome.exit_code)
        note_audit(request, exit_code=str(outcome.exit_code))
        if outcome.timed_out:
            raise CommandTimedOut(
                f"{program} did not finish within {seconds} s and was killed",
                hint=f'give it more time with "timeout" (at most 300 s; now {seconds})',
            )
        answer = ExecResponse(
            stdout=outcome.stdout,
            stderr=outcome.stderr,
            exit_code=outcome.exit_code if outcome.exit_code is not None else -1,
            exit_signal=outcome.exit_signal,
            truncated=outcome.truncated,
        )
        return json_response(answer.model_dump(mode="json", exclude_none=True))

    @router.get("/v1/hosts/{host_id}/exec-requests", responses={200: {"model": ExecOrders}})
    async def take_exec_requests(
        host_id: str, timeout: float = Query(20.0, ge=0, le=60)
    ) -> JSONResponse:
        """The exec orders for this host's machines; long-polls up to ``timeout`` s."""
        plane.store.get_host(host_id)
        orders = await broker.take(host_id, timeout)
        return json_response({"requests": orders})

    @router.post("/v1/hosts/{host_id}/exec-requests/{request_id}", responses={200: {"model": Ok}})
    async def answer_exec_request(host_id: str, request_id: str, body: ExecOutcome) -> JSONResponse:
        """The outcome of one order this host's agent took (404 once nobody waits)."""
        broker.answer(host_id, request_id, body)
        return json_response({"ok": True})

    return router


def build_console_router(plane: ControlPlane) -> APIRouter:
    """The console's two WebSocket routes (``ferry.server.console_relay``). They carry no
    router dependency (a WebSocket has no ``Request``): each authenticates itself."""
    router = APIRouter()
    relay = plane.consoles
    broker = plane.execs

    def caller(socket: WebSocket) -> Principal:
        assert plane.auth is not None
        plain = tokens.from_authorization(socket.headers.get("authorization"))
        principal = plane.auth.principal(plain)
        if not principal.is_operator:
            plane.auth.spend(principal)
        return principal

    @router.websocket("/v1/apps/{app_name}/machines/{machine_id}/console")
    async def console(
        socket: WebSocket,
        app_name: str,
        machine_id: str,
        cols: int = 80,
        rows: int = 24,
        cmd: str = CONSOLE_SHELL,
    ) -> None:
        """An interactive shell in a started machine (the app's writers only)."""
        await socket.accept()
        try:
            principal = caller(socket)
            assert plane.auth is not None
            org = plane.auth.cache.app_org(app_name)
            check(principal, Need(NeedKind.APP_WRITE), {"app_name": app_name}, org)
            argv = ExecRequest(cmd=cmd).argv()
            machine = plane.machines.get(app_name, machine_id)
            _require_started(machine, app_name)
            order = ExecOrder(
                id=new_ulid(),
                machine_id=machine.id,
                instance_id=machine.instance_id,
                argv=argv,
                tty=True,
                cols=min(max(cols, 1), 1000),
                rows=min(max(rows, 1), 1000),
            )
            relay.open(order.id, machine.host_id)
            broker.offer(machine.host_id, order)
            log.info("console to machine %s opened by %s", machine.id, principal.describe())
            try:
                await relay.relay(order.id, socket, AGENT_DIAL_SECONDS)
            finally:
                broker.withdraw(machine.host_id, order.id)
                log.info("console to machine %s closed", machine.id)
        except FerryError as error:
            await send_error(socket, error)

    @router.websocket("/v1/hosts/{host_id}/console/{session_id}")
    async def agent_console(socket: WebSocket, host_id: str, session_id: str) -> None:
        """The host's agent joins a console it was asked to open (host credential only)."""
        await socket.accept()
        try:
            check(caller(socket), Need(NeedKind.HOST), {"host_id": host_id})
            await relay.join_agent(session_id, host_id, socket)
        except FerryError as error:
            await send_error(socket, error)

    return router
