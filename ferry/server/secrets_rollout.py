"""Roll an app's machines onto its current secrets, one machine at a time, on the server.

Why on the server (flyctl drives Fly's from the CLI): a change made through
the API alone, by any client, reaches the machines; ``--detach`` can really
return at once; and the figure that matters (set a secret until every machine
runs with it) is one request. Each machine is updated with its own config
(a new ``instance_id``, as a deploy would), so its agent re-creates the
container, fetching the secrets again; the roll waits until the new instance
is ``started`` before touching the next machine, so an app with several
machines keeps serving. Stopped and suspended machines are not started: they
read the new values at their next fresh start (a suspended one that resumes
keeps the environment it was suspended with).

A roll that ends with every machine done marks the app's secrets deployed;
one that fails (a machine that does not start, a timeout) stops there and
leaves them staged, so ``ferry secrets deploy`` rolls again. One roll per app
runs at a time; a change during a roll queues a second one after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from starlette.concurrency import run_in_threadpool

from ferry.errors import ConflictError, FerryError, NotFoundError
from ferry.model import DesiredState, Machine, MachineState
from ferry.model.secrets import SecretsRollout
from ferry.server.machines_service import MachineService
from ferry.server.schemas import UpdateMachineRequest
from ferry.server.watch import ChangeNotifier
from ferry.store import StateStore

__all__ = ["RolloutStatus", "SecretsRollouts"]

log = logging.getLogger("ferry.server.secrets")

_TRIES = 3


@dataclass
class RolloutStatus:
    """Where one roll stands. ``machines``: the ids it rolls, in order."""

    app_name: str
    version: int
    state: Literal["running", "complete", "failed"] = "running"
    machines: list[str] = field(default_factory=list)
    done: int = 0
    reason: str | None = None
    seconds: float = 0.0

    def model(self) -> SecretsRollout:
        return SecretsRollout(
            version=self.version,
            state=self.state,
            machines=list(self.machines),
            done=self.done,
            total=len(self.machines),
            reason=self.reason,
            seconds=round(self.seconds, 3),
        )


class SecretsRollouts:
    """The rolls of every app. Its coroutines run on the server's event loop."""

    def __init__(
        self,
        store: StateStore,
        machines: MachineService,
        notifier: ChangeNotifier,
        *,
        machine_timeout: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.machines = machines
        self.notifier = notifier
        self.machine_timeout = machine_timeout
        self.monotonic = monotonic
        self._locks: dict[str, asyncio.Lock] = {}
        self._latest: dict[str, RolloutStatus] = {}
        self._tasks: set[asyncio.Task[RolloutStatus]] = set()

    def latest(self, app_name: str) -> RolloutStatus | None:
        """The app's last roll since the server started (running or finished), if any."""
        return self._latest.get(app_name)

    async def start(self, app_name: str, version: int) -> asyncio.Task[RolloutStatus]:
        """Begin a roll to ``version`` in the background; await the task to wait for it.

        The status (``latest``) lists the machines to roll at once. The task runs to
        its end even if whoever awaits it goes away (a client that disconnects does
        not stop a roll half-way)."""
        status = RolloutStatus(app_name, version)
        status.machines = [m.id for m in await run_in_threadpool(self._targets, app_name)]
        self._latest[app_name] = status
        task = asyncio.get_running_loop().create_task(self._run(status))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _targets(self, app_name: str) -> list[Machine]:
        """The app's machines that should be running, in the order they are rolled."""
        found = self.store.list_machines(app_name=app_name, include_destroyed=False)
        targets = [m for m in found if m.desired_state is DesiredState.STARTED]
        return sorted(targets, key=lambda m: (m.region, m.created_at, m.id))

    async def settle(self) -> None:
        """Wait until every roll started so far has ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel every running roll (server shutdown): its change stays staged."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, status: RolloutStatus) -> RolloutStatus:
        lock = self._locks.setdefault(status.app_name, asyncio.Lock())
        async with lock:
            began = self.monotonic()
            try:
                await self._roll(status)
            except FerryError as exc:
                status.state, status.reason = "failed", exc.message
            except Exception:  # a bug: the roll ends as failed rather than "running" forever
                log.exception("secrets roll of %s crashed", status.app_name)
                status.state, status.reason = "failed", "internal error (see the server log)"
            status.seconds = self.monotonic() - began
            if status.state == "running":
                status.state = "complete"
                await run_in_threadpool(
                    self.store.mark_secrets_deployed, status.app_name, status.version
                )
        log.info(
            "secrets roll of %s to version %d: %s, %d of %d machines in %.2f s%s",
            status.app_name,
            status.version,
            status.state,
            status.done,
            len(status.machines),
            status.seconds,
            f" ({status.reason})" if status.reason else "",
        )
        return status

    async def _roll(self, status: RolloutStatus) -> None:
        # Read again once this app's previous roll has ended: machines may have come or gone.
        targets = await run_in_threadpool(self._targets, status.app_name)
        status.machines = [m.id for m in targets]
        for machine in targets:
            updated = await run_in_threadpool(self._replace, status.app_name, machine.id)
            if updated is not None:
                reason = await self._wait_started(updated)
                if reason is not None:
                    status.state, status.reason = "failed", reason
                    return
            status.done += 1

    def _replace(self, app_name: str, machine_id: str) -> Machine | None:
        """Give the machine a new instance with its own config (``None``: it is gone or
        no longer meant to run, nothing to roll)."""
        for attempt in range(_TRIES):
            try:
                machine = self.machines.get(app_name, machine_id)
            except NotFoundError:
                return None
            if machine.desired_state is not DesiredState.STARTED:
                return None
            request = UpdateMachineRequest(
                config=machine.config, current_version=machine.instance_id
            )
            try:
                return self.machines.update(app_name, machine_id, request)
            except ConflictError:
                if attempt == _TRIES - 1:
                    raise
        return None

    async def _wait_started(self, machine: Machine) -> str | None:
        """``None`` once the new instance runs (or was replaced again since); else why not."""
        deadline = self.monotonic() + self.machine_timeout
        while True:
            seen = self.notifier.version(machine.host_id)
            try:
                current = await run_in_threadpool(self.store.get_machine, machine.id)
            except NotFoundError:
                return None
            if current.instance_id != machine.instance_id:
                return None  # replaced again: that start read the secrets too
            if current.state is MachineState.STARTED:
                return None
            if current.state in (MachineState.FAILED, MachineState.DESTROYED):
                return (
                    f"machine {machine.id} is {current.state.value} after the restart; "
                    f"see `ferry machine status {machine.id}` and its logs"
                )
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                return (
                    f"machine {machine.id} did not start within {self.machine_timeout:g} s "
                    f"(it is {current.state.value})"
                )
            await self.notifier.wait(machine.host_id, seen, remaining)
