"""Wake on request: which machine is woken, and that concurrent requests share one wake-up."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ferry.model import DesiredState, MachineState
from ferry.proxy.routes import Backend, RouteTable, ServicePorts
from ferry.proxy.wake import MachineWaker, wake_candidates


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

    async def scenario() -> list[bool]:
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

    assert asyncio.run(scenario()) == [True] * 5
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
