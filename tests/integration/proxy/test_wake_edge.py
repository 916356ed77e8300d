"""Wake on request through a real edge: the woken machine gets the held request, a frozen
machine gets it at once, and a wake that cannot finish is answered 503 in bounded time."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from ferry.model import DesiredState, MachineState
from ferry.proxy import detours
from ferry.proxy.routes import Backend
from ferry.proxy.wake import MachineWaker

from .harness import AppBackend, TableBox, backend_entry, backends, edge_client, run, running_proxy


class Starter:
    """The control plane as the waker sees it; ``effect`` runs on the loop at each call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, previous: str, effect: Callable[[], None]):
        self.loop = loop
        self.previous = previous
        self.effect = effect
        self.calls = 0

    def start_machine(self, app: str, machine_id: str) -> object:
        self.calls += 1
        self.loop.call_soon_threadsafe(self.effect)
        return self.previous


def asleep(entry: Backend, state: MachineState) -> Backend:
    desired = DesiredState.SUSPENDED if state is MachineState.SUSPENDED else DesiredState.STOPPED
    return replace(entry, state=state, desired_state=desired)


def test_a_woken_machine_serves_the_request_even_if_its_first_check_failed() -> None:
    """The edge's first health probe ran a moment before the app listened: the machine is
    out of rotation for a retry interval, but the waker saw it accept a connection, so the
    held request goes to it (it was a 503 before: 2 of 160 wakes in bench/wake_bench.py)."""

    async def scenario() -> tuple[int, str]:
        async with backends("ams-1") as (machine,):
            box = TableBox()
            up = backend_entry("m1", "ams", machine)
            box.set(asleep(up, MachineState.STOPPED))
            async with running_proxy(box) as proxy, edge_client(proxy) as c:

                def started_but_check_failed() -> None:
                    box.set(up)
                    proxy.health.set_check("m1", "service0-http0", False)

                starter = Starter(asyncio.get_running_loop(), "stopped", started_but_check_failed)
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=5)
                answer = await c.get("/")
        return answer.status_code, answer.text

    assert run(scenario()) == (200, "ams-1")


def frozen_listener() -> socket.socket:
    """A listening socket nobody accepts on: a suspended machine's (the kernel still
    completes handshakes into its backlog)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def test_a_request_to_a_suspended_machine_is_forwarded_at_once_and_answered_on_thaw() -> None:
    """The start is recorded (previous state ``suspended``): the edge sends the request to
    the frozen machine without waiting for ``started`` in its table (which here never
    comes); the answer comes when the process thaws."""

    async def scenario() -> tuple[int, str, float, int]:
        sock = frozen_listener()
        machine = AppBackend("ams-1")
        machine.port = sock.getsockname()[1]
        box = TableBox()
        box.set(asleep(backend_entry("m1", "ams", machine), MachineState.SUSPENDED))
        loop = asyncio.get_running_loop()
        thawed_at: list[float] = []

        async def thaw() -> None:
            await asyncio.sleep(0.2)
            thawed_at.append(time.monotonic())
            await machine.start_on(sock)

        starter = Starter(loop, "suspended", lambda: loop.create_task(thaw()) and None)
        try:
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=3)
                answer = await c.get("/")
                answered = time.monotonic()
        finally:
            await machine.stop()
        return answer.status_code, answer.text, answered - thawed_at[0], starter.calls

    status, body, after_thaw, calls = run(scenario())
    assert (status, body, calls) == (200, "ams-1", 1)
    assert after_thaw >= 0  # answered by the thawed process, not before


def test_a_frozen_machine_that_never_resumes_is_answered_503_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Suspended again (or its host gone) before it thawed: 503 after the resume timeout,
    not a request held until the response timeout."""
    monkeypatch.setattr(detours, "RESUME_TIMEOUT", 0.5)

    async def scenario() -> tuple[int, str, float]:
        sock = frozen_listener()
        box = TableBox()
        machine = AppBackend("ams-1")
        machine.port = sock.getsockname()[1]
        box.set(asleep(backend_entry("m1", "ams", machine), MachineState.SUSPENDED))
        starter = Starter(asyncio.get_running_loop(), "suspended", lambda: None)
        try:
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=3)
                began = time.monotonic()
                answer = await c.get("/")
                took = time.monotonic() - began
        finally:
            sock.close()
        return answer.status_code, answer.text, took

    status, body, took = run(scenario())
    assert status == 503 and "did not resume in time" in body
    assert took < 2.0


def test_a_wake_that_cannot_finish_is_answered_503_with_the_reason() -> None:
    """The machine never comes up: 503 once the wake's timeout has passed."""

    async def scenario() -> tuple[int, str, float]:
        async with backends("ams-1") as (machine,):
            box = TableBox()
            box.set(asleep(backend_entry("m1", "ams", machine), MachineState.STOPPED))
            starter = Starter(asyncio.get_running_loop(), "stopped", lambda: None)
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=0.5)
                began = time.monotonic()
                answer = await c.get("/")
                took = time.monotonic() - began
        return answer.status_code, answer.text, took

    status, body, took = run(scenario())
    assert status == 503 and "none could be started in time" in body
    assert took < 2.0


def test_a_post_is_not_left_in_a_frozen_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that must not run twice waits for ``started`` instead of going to the
    frozen process: if the machine never thaws, the 503 is the whole story (the machine
    never got it)."""
    monkeypatch.setattr(detours, "RESUME_TIMEOUT", 0.5)

    async def scenario() -> tuple[int, str, bool]:
        sock = frozen_listener()
        box = TableBox()
        machine = AppBackend("ams-1")
        machine.port = sock.getsockname()[1]
        box.set(asleep(backend_entry("m1", "ams", machine), MachineState.SUSPENDED))
        starter = Starter(asyncio.get_running_loop(), "suspended", lambda: None)
        try:
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=3)
                answer = await c.post("/", content=b"charge the card once")
            try:
                sock.accept()
                reached = True
            except BlockingIOError:
                reached = False
        finally:
            sock.close()
        return answer.status_code, answer.text, reached

    status, body, reached = run(scenario())
    assert status == 503 and "none could be started in time" in body
    assert not reached


def test_a_post_to_a_suspended_machine_is_sent_once_it_shows_started() -> None:
    async def scenario() -> tuple[int, str]:
        sock = frozen_listener()
        machine = AppBackend("ams-1")
        machine.port = sock.getsockname()[1]
        box = TableBox()
        entry = backend_entry("m1", "ams", machine)
        box.set(asleep(entry, MachineState.SUSPENDED))
        loop = asyncio.get_running_loop()

        async def thaw() -> None:
            await asyncio.sleep(0.1)
            await machine.start_on(sock)
            box.set(entry)  # the agent's report reaches the edge's table

        starter = Starter(loop, "suspended", lambda: loop.create_task(thaw()) and None)
        try:
            async with running_proxy(box) as proxy, edge_client(proxy) as c:
                proxy.http.wake = MachineWaker(starter, box, {"ams": 0.0}, timeout=3)
                answer = await c.post("/", content=b"once")
        finally:
            await machine.stop()
        return answer.status_code, answer.text

    assert run(scenario()) == (200, "ams-1")
