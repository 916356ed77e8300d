"""Wake on request: when an app has machines but none started, start the nearest one.

A suspended machine is woken the same way (``start`` resumes it, its memory
intact); in a region it goes before a stopped one, as it is ready far sooner.

The proxy holds the request (it awaits ``MachineWaker``) until the machine
is started, in the routing table and accepting connections on its service
port, or until ``timeout`` — then the proxy answers 503 with a clear body.
Concurrent requests for the same app share one wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ferry.errors import FerryError
from ferry.model import DesiredState, MachineState
from ferry.proxy.routes import Backend, RouteTable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.005


class MachineStarter(Protocol):
    """The one call the waker makes to the control plane (``FerryClient.start_machine``)."""

    def start_machine(self, app: str, machine_id: str) -> object: ...


def wake_candidates(
    backends: tuple[Backend, ...], region: str, rtt_ms: Mapping[str, float]
) -> list[Backend]:
    """Stopped or suspended machines that may be auto-started, nearest region first,
    and within a region suspended ones first (a resume beats a boot). Pure."""
    asleep = [
        b
        for b in backends
        if not b.started
        and b.desired_state is not DesiredState.DESTROYED
        and all(s.autostart for s in b.services)
    ]
    return sorted(
        asleep,
        key=lambda b: (
            rtt_ms.get(b.region, 0.0 if b.region == region else 1e9),
            b.region,
            b.state is not MachineState.SUSPENDED,
            b.machine_id,
        ),
    )


class MachineWaker:
    """``await waker(app, region)`` -> True once a machine of ``app`` is ready to serve."""

    def __init__(
        self,
        starter: MachineStarter,
        table: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        *,
        timeout: float = 20.0,
    ) -> None:
        self.starter = starter
        self.table = table
        self.rtt_ms = rtt_ms
        self.timeout = timeout
        self._inflight: dict[str, asyncio.Future[bool]] = {}

    async def __call__(self, app: str, region: str) -> bool:
        pending = self._inflight.get(app)
        if pending is None:
            pending = asyncio.ensure_future(self._wake(app, region))
            self._inflight[app] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(app, None))
        return await asyncio.shield(pending)

    async def _wake(self, app: str, region: str) -> bool:
        began = time.monotonic()
        deadline = began + self.timeout
        candidates = wake_candidates(self.table().backends(app), region, self.rtt_ms)
        if not candidates:
            return False
        machine = candidates[0]
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.starter.start_machine, app, machine.machine_id)
        except FerryError as exc:
            log.warning("could not wake %s of %s: %s", machine.machine_id, app, exc)
            return False
        started = await self._until(deadline, lambda: self._is_started(app, machine.machine_id))
        ready = started and await self._port_open(machine, deadline)
        log.info(
            "woke %s of %s in %s for a request at %s: %s in %.0f ms",
            machine.machine_id,
            app,
            machine.region,
            region,
            "ready" if ready else "not ready",
            (time.monotonic() - began) * 1000,
        )
        return ready

    def _is_started(self, app: str, machine_id: str) -> bool:
        return any(b.machine_id == machine_id and b.started for b in self.table().backends(app))

    async def _until(self, deadline: float, predicate: Callable[[], bool]) -> bool:
        while not predicate():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    async def _port_open(self, machine: Backend, deadline: float) -> bool:
        """The app listens: a TCP connect to its first service port succeeds."""
        ports = [s.internal_port for s in machine.services] or [8080]
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(machine.address, ports[0]), timeout=1.0
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(POLL_SECONDS)
                continue
            writer.close()
            return True
        return False
