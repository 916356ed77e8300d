"""Handing a user's exec request to the agent of the machine's host, and its answer back.

Agents do not listen: they pull. The route of ``POST …/machines/{id}/exec`` puts an
``ExecOrder`` in the host's queue here and awaits its outcome; the host's agent keeps a
long poll open (``GET /v1/hosts/{host}/exec-requests``), takes the orders, runs them
and posts each outcome (``POST /v1/hosts/{host}/exec-requests/{id}``), which wakes the
waiting route.

Everything is in memory and transient (no store, no migration): an order that no agent
took or answered within its time is dropped, and so is its late answer. A control
plane restart drops the orders in flight; their callers get an error.

All methods run on the server's event loop (the routes are ``async``); none blocks.
Nothing here logs an order's arguments, stdin or output.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from ferry.errors import FerryError, NotFoundError
from ferry.model.exec import ExecOrder, ExecOutcome

__all__ = ["AgentDidNotAnswer", "CommandTimedOut", "ExecBroker"]


class AgentDidNotAnswer(FerryError):
    """The machine's agent did not take or answer the command in time (504)."""

    status = 504


class CommandTimedOut(FerryError):
    """The command ran past its ``timeout`` and was killed (408)."""

    status = 408


@dataclass(eq=False)
class _Pending:
    host_id: str
    order: ExecOrder
    outcome: asyncio.Future[ExecOutcome]
    taken: bool = False
    taken_event: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class _HostQueue:
    orders: deque[_Pending] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


#: Seconds an order waits for the host's agent to take it. A live agent keeps a poll
#: open, so it takes an order at once; one that does not is down or cut off.
PICKUP_SECONDS = 10.0


class ExecBroker:
    """Per-host queues of exec orders and the futures their callers await.

    ``pickup_seconds``: how long an order waits to be taken before its caller gets
    ``AgentDidNotAnswer`` (tests with no agent lower it).
    """

    def __init__(self, pickup_seconds: float = PICKUP_SECONDS) -> None:
        self.pickup_seconds = pickup_seconds
        self._hosts: dict[str, _HostQueue] = {}
        self._by_id: dict[str, _Pending] = {}

    def _queue(self, host_id: str) -> _HostQueue:
        return self._hosts.setdefault(host_id, _HostQueue())

    def in_flight(self) -> int:
        """Orders queued or being run (for tests and status)."""
        return len(self._by_id)

    async def run(self, host_id: str, order: ExecOrder, answer_within: float) -> ExecOutcome:
        """Queue ``order`` for ``host_id``'s agent and wait for its outcome.

        Raises ``AgentDidNotAnswer`` when the agent does not take the order within
        ``pickup_seconds``, or does not answer within ``answer_within`` seconds of taking
        it. Cancelling the caller (the user hung up) drops the order; the agent's late
        answer is then refused.
        """
        pending = _Pending(host_id, order, asyncio.get_running_loop().create_future())
        queue = self._queue(host_id)
        queue.orders.append(pending)
        self._by_id[order.id] = pending
        queue.arrived.set()
        try:
            try:
                await asyncio.wait_for(pending.taken_event.wait(), self.pickup_seconds)
            except TimeoutError:
                raise _no_answer(pending, self.pickup_seconds) from None
            try:
                return await asyncio.wait_for(asyncio.shield(pending.outcome), answer_within)
            except TimeoutError:
                raise _no_answer(pending, answer_within) from None
        finally:
            self._by_id.pop(order.id, None)
            with contextlib.suppress(ValueError):
                queue.orders.remove(pending)

    def offer(self, host_id: str, order: ExecOrder) -> None:
        """Queue ``order`` for ``host_id``'s agent without waiting for an outcome (a
        console: the agent dials the relay instead). ``withdraw`` removes it if untaken."""
        queue = self._queue(host_id)
        pending = _Pending(host_id, order, asyncio.get_running_loop().create_future())
        queue.orders.append(pending)
        queue.arrived.set()

    def withdraw(self, host_id: str, order_id: str) -> None:
        """Drop ``order_id`` from ``host_id``'s queue if the agent has not taken it."""
        queue = self._queue(host_id)
        for pending in list(queue.orders):
            if pending.order.id == order_id:
                queue.orders.remove(pending)

    async def take(self, host_id: str, timeout: float) -> list[ExecOrder]:
        """The orders waiting for ``host_id``, marked taken; waits up to ``timeout``
        seconds for one to arrive when none waits. Returns ``[]`` on timeout."""
        queue = self._queue(host_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            fresh = [p for p in queue.orders if not p.taken]
            if fresh:
                for pending in fresh:
                    pending.taken = True
                    pending.taken_event.set()
                    queue.orders.remove(pending)
                return [p.order for p in fresh]
            queue.arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.arrived.wait(), remaining)

    def answer(self, host_id: str, order_id: str, outcome: ExecOutcome) -> None:
        """Deliver the agent's outcome of ``order_id`` to its waiting caller.

        Raises ``NotFoundError`` when no such order of this host waits any more (it
        timed out, its caller hung up, or it is another host's).
        """
        pending = self._by_id.get(order_id)
        if pending is None or pending.host_id != host_id:
            raise NotFoundError(
                f"exec request {order_id!r} of host {host_id!r} is not waiting for an answer",
                hint="it timed out or its caller hung up; nothing to do",
            )
        if not pending.outcome.done():
            pending.outcome.set_result(outcome)


def _no_answer(pending: _Pending, seconds: float) -> AgentDidNotAnswer:
    host = pending.host_id
    if pending.taken:
        return AgentDidNotAnswer(
            f"the agent of host {host} took the command but did not answer within {seconds:g} s",
            hint="the host may be overloaded; try again, or check `ferry cluster status`",
        )
    return AgentDidNotAnswer(
        f"the agent of host {host} did not pick up the command within {seconds:g} s",
        hint="is the host's agent running? see `ferry cluster status`",
    )
