"""Wake on request: when an app has machines but none started, start the nearest one.

A suspended machine is woken the same way (``start`` resumes it, its memory
intact); in a region it goes before a stopped one, as it is ready far sooner.

``await waker(app, region)`` answers, within ``timeout``, one of:

- the ``Backend`` of a machine that now accepts connections on its service
  port (started in the routing table, or resuming: see below) — the proxy
  sends the held request there even if its first health check has not passed
  yet (a check that ran a moment before the app listened must not turn the
  woken machine's first request into a 503);
- ``False``: nothing could be woken in time — the proxy answers 503.

A machine that was suspended is not waited for: once the control plane has
recorded the start (the call returned ``previous_state`` suspended or
suspending), its frozen process still holds its listening socket and the
kernel completes TCP handshakes for it, so the request is forwarded at once
and answered as soon as the agent thaws it. This skips three control-plane
hops (server → agent watch, agent report, server → the edge's routing watch).

The wait survives what happens meanwhile: a machine stopped again before it
came up (the autoscaler's idle stop, a user's stop) is started again; a
machine that left the table or whose start is refused (destroyed meanwhile)
gives way to the next candidate; ``MAX_STARTS`` start calls at most.
Concurrent requests for the same app share one wake-up.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from ferry.errors import FerryError
from ferry.model import DesiredState, MachineState
from ferry.proxy.routes import Backend, RouteTable

log = logging.getLogger(__name__)

POLL_SECONDS = 0.005
#: Start calls one wake makes at most (a machine stopped again meanwhile, the next one).
MAX_STARTS = 4
#: The table must show the start (desired ``started``) within this long after the call
#: returned; if it never does, someone stopped the machine again before the edge saw it.
UNSEEN_START_SECONDS = 1.0
#: What the start call returns for a machine whose frozen process holds its socket.
_FROZEN = frozenset({MachineState.SUSPENDED.value, MachineState.SUSPENDING.value})


class MachineStarter(Protocol):
    """The one call the waker makes to the control plane (``FerryClient.start_machine``).

    Returns the machine's state before the call (Fly's ``previous_state``), as text.
    """

    def start_machine(self, app: str, machine_id: str) -> object: ...


class Outcome(enum.Enum):
    """How waiting for one started machine ended."""

    READY = "ready"  # started in the table and accepting connections
    STOPPED_AGAIN = "stopped again"  # desired no longer started: start it again
    GONE = "gone"  # left the table (destroyed): try the next candidate
    TIMED_OUT = "timed out"


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


def watch_outcome(
    machine: Backend | None, seen_desired: bool, since_call: float
) -> tuple[Outcome | None, bool]:
    """One look at the woken machine in the table: (outcome or None to keep waiting,
    whether the table has shown the start yet). Pure.

    ``machine`` is its current entry (None: not in the table any more);
    ``seen_desired``: an earlier look saw it desired ``started``; ``since_call``:
    seconds since the start call returned.
    """
    if machine is None:
        return Outcome.GONE, seen_desired
    if machine.started:
        return Outcome.READY, True
    if machine.desired_state is DesiredState.STARTED:
        return None, True  # starting, or still stopping before it starts again
    if seen_desired or since_call >= UNSEEN_START_SECONDS:
        return Outcome.STOPPED_AGAIN, seen_desired
    return None, False  # the table has not caught up with the start call yet


class MachineWaker:
    """``await waker(app, region)`` -> the machine to send the request to, or False."""

    def __init__(
        self,
        starter: MachineStarter,
        table: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        *,
        timeout: float = 20.0,
        forward_to_frozen: bool = True,
    ) -> None:
        self.starter = starter
        self.table = table
        self.rtt_ms = rtt_ms
        self.timeout = timeout
        self.forward_to_frozen = forward_to_frozen
        self._inflight: dict[str, asyncio.Future[Backend | bool]] = {}

    async def __call__(self, app: str, region: str) -> Backend | bool:
        pending = self._inflight.get(app)
        if pending is None:
            pending = asyncio.ensure_future(self._wake(app, region))
            self._inflight[app] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(app, None))
        return await asyncio.shield(pending)

    async def _wake(self, app: str, region: str) -> Backend | bool:
        began = time.monotonic()
        deadline = began + self.timeout
        refused: set[str] = set()
        starts = 0
        last = "no machine could be woken"
        while starts < MAX_STARTS and time.monotonic() < deadline:
            backends = self.table().backends(app)
            if any(b.started for b in backends):
                return True  # another wake (or a user) got there first: route as usual
            candidates = [
                b
                for b in wake_candidates(backends, region, self.rtt_ms)
                if b.machine_id not in refused
            ]
            if not candidates:
                break
            machine = candidates[0]
            starts += 1
            try:
                previous = await self._start(app, machine.machine_id, deadline)
            except (FerryError, TimeoutError) as exc:
                why = str(exc) or "the control plane did not answer in time"
                log.warning("could not wake %s of %s: %s", machine.machine_id, app, why)
                refused.add(machine.machine_id)
                last = f"start of {machine.machine_id} failed: {why}"
                continue
            if self.forward_to_frozen and previous in _FROZEN:
                self._log(machine, app, region, began, f"resuming (was {previous})")
                return machine
            outcome, current = await self._until_ready(app, machine, deadline)
            last = f"{machine.machine_id} {outcome.value}"
            if outcome is Outcome.READY and current is not None:
                self._log(machine, app, region, began, "ready")
                return current
            if outcome is Outcome.GONE:
                refused.add(machine.machine_id)
        log.warning(
            "woke no machine of %s for a request at %s in %.0f ms: %s",
            app, region, (time.monotonic() - began) * 1000, last,
        )  # fmt: skip
        return False

    async def _start(self, app: str, machine_id: str, deadline: float) -> str:
        """The start call, bounded by the wake's deadline; the machine's previous state."""
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(None, self.starter.start_machine, app, machine_id)
        left = max(deadline - time.monotonic(), 0.0)
        return str(await asyncio.wait_for(call, timeout=left) or "")

    async def _until_ready(
        self, app: str, machine: Backend, deadline: float
    ) -> tuple[Outcome, Backend | None]:
        """Wait for the machine to be started and listening: the outcome, its last entry."""
        called = time.monotonic()
        seen = False
        while True:
            now = time.monotonic()
            current = next(
                (b for b in self.table().backends(app) if b.machine_id == machine.machine_id), None
            )
            outcome, seen = watch_outcome(current, seen, now - called)
            if outcome is Outcome.READY and current is not None:
                if await self._port_open(current, deadline):
                    return Outcome.READY, current
                return Outcome.TIMED_OUT, current
            if outcome is not None:
                return outcome, current
            if now >= deadline:
                return Outcome.TIMED_OUT, current
            await asyncio.sleep(POLL_SECONDS)

    async def _port_open(self, machine: Backend, deadline: float) -> bool:
        """The app listens: a TCP connect to its first service port succeeds."""
        ports = [s.internal_port for s in machine.services] or [8080]
        while (left := deadline - time.monotonic()) > 0:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(machine.address, ports[0]), timeout=min(1.0, left)
                )
            except (OSError, TimeoutError):
                await asyncio.sleep(POLL_SECONDS)
                continue
            writer.close()
            return True
        return False

    def _log(self, machine: Backend, app: str, region: str, began: float, how: str) -> None:
        log.info(
            "woke %s of %s in %s for a request at %s: %s in %.0f ms",
            machine.machine_id, app, machine.region, region, how,
            (time.monotonic() - began) * 1000,
        )  # fmt: skip
