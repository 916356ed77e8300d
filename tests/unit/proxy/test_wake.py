"""Wake on request: which machine is woken, and that concurrent requests share one wake-up."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from ferry.errors import ConflictError
from ferry.model import DesiredState, MachineState
from ferry.proxy.routes import Backend, RouteTable, ServicePorts
from ferry.proxy.wake import (
    UNSEEN_START_SECONDS,
    MachineWaker,
    Outcome,
    wake_candidates,
    watch_outcome,
)


def backend(mid: str, region: str, *, started: bool = False, autostart: bool = True) -> Backend:
    return Backend(
        machine_id=mid,
        instance_id="i1",
        app="app",
        region=region,
        address="127.0.0.1",
        state=MachineState.STARTED if started else MachineState.STOPPED,
        desired_state=DesiredState.STARTED if started else DesiredState.STOPPED,
        services=(ServicePorts(internal_port=1, autostart=autostart),),
    )


RTT = {"ams": 0.0, "iad": 84.0, "sin": 169.0}


def test_the_nearest_stopped_machine_that_may_autostart_is_chosen() -> None:
    backends = (
        backend("far", "sin"),
        backend("near", "iad"),
        backend("manual", "ams", autostart=False),
        backend("running", "ams", started=True),
    )
    assert [b.machine_id for b in wake_candidates(backends, "ams", RTT)] == ["near", "far"]


def test_concurrent_requests_share_one_start_call() -> None:
    """Five held requests, one start call; all are released once the app accepts connections."""
    calls: list[str] = []

    async def scenario() -> list[Backend | bool]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stopped = replace(backend("m1", "ams"), services=(ServicePorts(internal_port=port),))
        table = {"now": RouteTable(1, {"app": (stopped,)})}

        class Starter:
            def start_machine(self, app: str, machine_id: str) -> object:
                calls.append(machine_id)
                started = replace(
                    stopped, state=MachineState.STARTED, desired_state=DesiredState.STARTED
                )
                table["now"] = RouteTable(2, {"app": (started,)})
                return None

        waker = MachineWaker(Starter(), lambda: table["now"], RTT, timeout=5)
        try:
            return list(await asyncio.gather(*(waker("app", "ams") for _ in range(5))))
        finally:
            server.close()

    woken = asyncio.run(scenario())
    assert all(isinstance(b, Backend) and b.machine_id == "m1" for b in woken)
    assert calls == ["m1"]


def test_no_stopped_machine_means_no_wake() -> None:
    waker = MachineWaker(object(), lambda: RouteTable(), RTT)  # type: ignore[arg-type]
    assert asyncio.run(waker("app", "ams")) is False


def test_a_suspended_machine_is_woken_and_before_a_stopped_one_in_its_region() -> None:
    asleep = replace(
        backend("asleep", "iad"),
        state=MachineState.SUSPENDED,
        desired_state=DesiredState.SUSPENDED,
    )
    backends = (backend("a-stopped", "iad"), asleep, backend("far", "sin"))
    assert [b.machine_id for b in wake_candidates(backends, "ams", RTT)] == [
        "asleep",
        "a-stopped",
        "far",
    ]


def asleep_as(b: Backend, state: MachineState, desired: DesiredState) -> Backend:
    return replace(b, state=state, desired_state=desired)


class ScriptedStarter:
    """A control plane whose answers the test scripts: ``on_start`` runs at each call."""

    def __init__(self, on_start: Callable[[str, int], object]) -> None:
        self.calls: list[str] = []
        self.on_start = on_start

    def start_machine(self, app: str, machine_id: str) -> object:
        self.calls.append(machine_id)
        return self.on_start(machine_id, len(self.calls))


async def listening() -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_machine_stopped_again_before_it_came_up_is_started_again() -> None:
    """The autoscaler's idle stop lands right after the wake's start: the wake starts it
    again instead of waiting for a machine nobody will start (it hung until the timeout)."""

    async def scenario() -> tuple[Backend | bool, list[str]]:
        server, port = await listening()
        stopped = replace(backend("m1", "ams"), services=(ServicePorts(internal_port=port),))
        table = {"now": RouteTable(1, {"app": (stopped,)})}
        loop = asyncio.get_running_loop()

        def show(b: Backend) -> None:
            table["now"] = RouteTable(table["now"].version + 1, {"app": (b,)})

        def on_start(_mid: str, n: int) -> str:
            wanted = asleep_as(stopped, MachineState.STOPPING, DesiredState.STARTED)
            loop.call_soon_threadsafe(show, wanted)
            if n == 1:  # the autoscaler stops it again before the agent acts
                again = asleep_as(stopped, MachineState.STOPPING, DesiredState.STOPPED)
                loop.call_soon_threadsafe(loop.call_later, 0.05, show, again)
            else:  # the agent starts it
                up = asleep_as(stopped, MachineState.STARTED, DesiredState.STARTED)
                loop.call_soon_threadsafe(loop.call_later, 0.05, show, up)
            return "stopping"

        starter = ScriptedStarter(on_start)
        waker = MachineWaker(starter, lambda: table["now"], RTT, timeout=3)
        try:
            return await waker("app", "ams"), starter.calls
        finally:
            server.close()

    woke, calls = asyncio.run(scenario())
    assert isinstance(woke, Backend) and woke.machine_id == "m1" and woke.started
    assert calls == ["m1", "m1"]


def test_a_start_the_table_never_shows_is_made_again() -> None:
    """Stopped again before the edge's table ever showed the start: after a second the
    wake asks again rather than wait for the timeout."""

    async def scenario() -> tuple[Backend | bool, list[str], float]:
        server, port = await listening()
        stopped = replace(backend("m1", "ams"), services=(ServicePorts(internal_port=port),))
        table = {"now": RouteTable(1, {"app": (stopped,)})}
        loop = asyncio.get_running_loop()

        def on_start(_mid: str, n: int) -> str:
            if n == 2:
                up = asleep_as(stopped, MachineState.STARTED, DesiredState.STARTED)
                loop.call_soon_threadsafe(table.__setitem__, "now", RouteTable(2, {"app": (up,)}))
            return "stopped"

        starter = ScriptedStarter(on_start)
        waker = MachineWaker(starter, lambda: table["now"], RTT, timeout=5)
        began = time.monotonic()
        try:
            return await waker("app", "ams"), starter.calls, time.monotonic() - began
        finally:
            server.close()

    woke, calls, took = asyncio.run(scenario())
    assert isinstance(woke, Backend) and calls == ["m1", "m1"]
    assert UNSEEN_START_SECONDS <= took < 3


def test_a_refused_start_wakes_the_next_machine() -> None:
    """The nearest machine was destroyed meanwhile (its start is refused): the next one."""

    async def scenario() -> tuple[Backend | bool, list[str]]:
        server, port = await listening()
        svc = (ServicePorts(internal_port=port),)
        gone, other = (
            replace(backend(m, r), services=svc) for m, r in (("m1", "ams"), ("m2", "iad"))
        )
        table = {"now": RouteTable(1, {"app": (gone, other)})}
        loop = asyncio.get_running_loop()

        def on_start(mid: str, _n: int) -> str:
            if mid == "m1":
                raise ConflictError("machine is destroyed; it cannot be started")
            up = asleep_as(other, MachineState.STARTED, DesiredState.STARTED)
            loop.call_soon_threadsafe(table.__setitem__, "now", RouteTable(2, {"app": (up,)}))
            return "stopped"

        starter = ScriptedStarter(on_start)
        waker = MachineWaker(starter, lambda: table["now"], RTT, timeout=3)
        try:
            return await waker("app", "ams"), starter.calls
        finally:
            server.close()

    woke, calls = asyncio.run(scenario())
    assert isinstance(woke, Backend) and woke.machine_id == "m2"
    assert calls == ["m1", "m2"]


def test_a_machine_that_never_starts_ends_the_wait_at_the_timeout() -> None:
    """Nothing comes up: False (the edge answers 503) once the timeout has passed, also
    when the start call itself hangs; never a request held without end."""
    stopped = backend("m1", "ams")
    hung = threading.Event()

    def never(_mid: str, n: int) -> str:
        if n == 1:
            hung.wait(5)  # a control plane that does not answer
        return "stopped"

    async def timed(waker: MachineWaker) -> tuple[Backend | bool, float]:
        began = time.monotonic()
        woke = await waker("app", "ams")
        took = time.monotonic() - began
        hung.set()  # let the stuck call's thread end, so that the loop can close
        return woke, took

    table = RouteTable(1, {"app": (stopped,)})
    try:
        for starter in (ScriptedStarter(lambda _m, _n: "stopped"), ScriptedStarter(never)):
            woke, took = asyncio.run(timed(MachineWaker(starter, lambda: table, RTT, timeout=0.5)))
            assert woke is False and took < 1.0
    finally:
        hung.set()


def test_a_suspended_machine_gets_the_request_as_soon_as_its_start_is_recorded() -> None:
    """Its frozen process holds its listening socket: no wait for ``started`` to come back
    through the agent and the routing watch."""
    asleep = asleep_as(backend("m1", "ams"), MachineState.SUSPENDED, DesiredState.SUSPENDED)
    starter = ScriptedStarter(lambda _m, _n: "suspended")
    waker = MachineWaker(starter, lambda: RouteTable(1, {"app": (asleep,)}), RTT, timeout=3)
    assert asyncio.run(waker("app", "ams")) == asleep
    assert starter.calls == ["m1"]


def test_a_machine_stopped_while_suspended_is_waited_for_like_a_stopped_one() -> None:
    """The table said suspended, but the control plane says it was stopped meanwhile (no
    process, no socket): the wake waits for it to start and listen."""
    asleep = asleep_as(backend("m1", "ams"), MachineState.SUSPENDED, DesiredState.SUSPENDED)
    starter = ScriptedStarter(lambda _m, _n: "stopped")
    waker = MachineWaker(starter, lambda: RouteTable(1, {"app": (asleep,)}), RTT, timeout=0.3)
    assert asyncio.run(waker("app", "ams")) is False


def test_watch_outcome_reads_the_table() -> None:
    m = backend("m1", "ams")
    wanted = asleep_as(m, MachineState.STOPPING, DesiredState.STARTED)
    up = asleep_as(m, MachineState.STARTED, DesiredState.STARTED)
    assert watch_outcome(None, True, 0.0) == (Outcome.GONE, True)
    assert watch_outcome(up, False, 0.0) == (Outcome.READY, True)
    assert watch_outcome(wanted, False, 0.0) == (None, True)  # still stopping: wait
    assert watch_outcome(m, False, 0.1) == (None, False)  # the table lags the call
    assert watch_outcome(m, True, 0.1) == (Outcome.STOPPED_AGAIN, True)
    assert watch_outcome(m, False, UNSEEN_START_SECONDS) == (Outcome.STOPPED_AGAIN, False)


def test_a_wake_while_the_machine_is_still_stopping_waits_through_the_stop() -> None:
    """The request comes while the idle stop is under way: one start call, and the wake
    follows stopping -> stopped -> starting -> started (desired started throughout)."""

    async def scenario() -> tuple[Backend | bool, list[str]]:
        server, port = await listening()
        base = replace(backend("m1", "ams"), services=(ServicePorts(internal_port=port),))
        stopping = asleep_as(base, MachineState.STOPPING, DesiredState.STOPPED)
        table = {"now": RouteTable(1, {"app": (stopping,)})}
        loop = asyncio.get_running_loop()

        def show(state: MachineState) -> None:
            entry = asleep_as(base, state, DesiredState.STARTED)
            table["now"] = RouteTable(table["now"].version + 1, {"app": (entry,)})

        def on_start(_mid: str, _n: int) -> str:
            steps = (MachineState.STOPPING, MachineState.STOPPED, MachineState.STARTING)
            for i, state in enumerate((*steps, MachineState.STARTED)):
                loop.call_soon_threadsafe(loop.call_later, 0.03 * i, show, state)
            return "stopping"

        starter = ScriptedStarter(on_start)
        waker = MachineWaker(starter, lambda: table["now"], RTT, timeout=3)
        try:
            return await waker("app", "ams"), starter.calls
        finally:
            server.close()

    woke, calls = asyncio.run(scenario())
    assert isinstance(woke, Backend) and woke.started
    assert calls == ["m1"]
