"""The interactive console: two WebSockets, the user's and the agent's, joined by the
control plane.

``WS /v1/apps/{app}/machines/{id}/console?cols=&rows=&cmd=`` (the user's token, the
app's writers only) queues a ``tty`` ``ExecOrder`` for the machine's host through the
exec long poll (``ExecBroker.offer``); the host's agent, which never listens, dials
``WS /v1/hosts/{host}/console/{order id}`` with its host credential, runs the shell
with ``runc exec -t`` on a terminal and the relay copies frames both ways until
either side closes:

- binary frames: terminal bytes (the user's keys one way, the terminal's output back);
- text frames: JSON control messages — ``{"resize": [cols, rows]}`` from the user,
  ``{"exit": code}`` from the agent when the shell ends, ``{"error": …, "hint": …}``
  from the control plane when the console cannot open (then it closes).

Nothing of what flows is logged or kept; only "console to machine X opened/closed".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ferry.errors import FerryError, NotFoundError
from ferry.server.exec_service import AgentDidNotAnswer

__all__ = ["AGENT_DIAL_SECONDS", "ConsoleRelay", "send_error"]

log = logging.getLogger("ferry.server.console")

#: Seconds the user's console waits for the host's agent to dial in.
AGENT_DIAL_SECONDS = 30.0


@dataclass(eq=False)
class _Session:
    host_id: str
    agent: asyncio.Future[WebSocket]
    done: asyncio.Event = field(default_factory=asyncio.Event)


async def send_error(socket: WebSocket, error: FerryError) -> None:
    """Tell the user why the console cannot open (a JSON text frame), then close."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await socket.send_json(
            {"error": error.message, "hint": error.hint, "status": int(error.status)}
        )
        await socket.close(code=4000 + int(error.status) % 1000)


class ConsoleRelay:
    """Console sessions waiting for, or joined to, their agent's WebSocket. In memory."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}

    def open(self, session_id: str, host_id: str) -> None:
        """Expect ``host_id``'s agent to dial ``session_id``."""
        loop = asyncio.get_running_loop()
        self._sessions[session_id] = _Session(host_id, loop.create_future())

    def active(self) -> int:
        return len(self._sessions)

    async def join_agent(self, session_id: str, host_id: str, socket: WebSocket) -> None:
        """The agent's side: hand its (accepted) socket to the waiting user and hold it
        open until the relay ends. ``NotFoundError`` when no such session waits."""
        session = self._sessions.get(session_id)
        if session is None or session.host_id != host_id or session.agent.done():
            raise NotFoundError(
                f"console {session_id!r} of host {host_id!r} is not waiting",
                hint="its user hung up or it timed out",
            )
        session.agent.set_result(socket)
        await session.done.wait()

    async def relay(self, session_id: str, user: WebSocket, wait: float) -> None:
        """The user's side: wait up to ``wait`` s for the agent, then copy frames both ways
        until one side closes; then close the other. Raises ``FerryError`` (504-like)
        when the agent never dials."""
        session = self._sessions[session_id]
        try:
            try:
                agent = await asyncio.wait_for(asyncio.shield(session.agent), wait)
            except TimeoutError:
                raise AgentDidNotAnswer(
                    f"the agent of host {session.host_id} did not open the console "
                    f"within {wait:.0f} s",
                    hint="is the host's agent running? see `ferry cluster status`",
                ) from None
            copies = [
                asyncio.create_task(_copy(user, agent)),
                asyncio.create_task(_copy(agent, user)),
            ]
            _, pending = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for socket in (user, agent):
                await _close(socket)
        finally:
            session.done.set()
            self._sessions.pop(session_id, None)


async def _close(socket: WebSocket) -> None:
    """Close ``socket`` unless its peer is gone already."""
    if WebSocketState.DISCONNECTED in (socket.client_state, socket.application_state):
        return
    # A peer gone in the meantime shows in a transport's own way (RuntimeError,
    # WebSocketDisconnect, a closed stream): the relay is over either way.
    with contextlib.suppress(Exception):
        await socket.close()


async def _copy(source: WebSocket, target: WebSocket) -> None:
    """Frames from ``source`` to ``target``, as they are, until either side is gone."""
    with contextlib.suppress(Exception):  # see ``_close``: any end of either side ends it
        while True:
            message = await source.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await target.send_bytes(message["bytes"])
            elif message.get("text") is not None:
                await target.send_text(message["text"])
