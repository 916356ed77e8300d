"""Machine health as the edge sees it: active checks plus passive marks.

``HealthBook.health`` is the mapping routing reads (machine id -> False when
out of rotation; absent means healthy). Two sources feed it:

- active checks (``HealthChecker``): each backend's service checks run from
  the proxy at their interval with the prober the agent uses too
  (``ferry.net.probe``: the check's method, path, headers and protocol, 2xx
  passes, no redirects followed, or a TCP connect); a failure takes the
  machine out, a pass brings it back;
- passive marks (``HealthBook.mark_refused``): a refused or timed-out
  connect takes the machine out for a short cooldown.

``HealthBook.checked`` is the same mapping with active check failures only:
routing falls back to it when passive marks alone would leave an app with no
machine (a busy single machine whose accept queue overflowed once must not
turn into two seconds of 503s for everyone).

Probes go through the ``Prober`` protocol (``ferry.net.probe``) so unit tests use a fake.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ferry.model import CheckConfig, parse_duration
from ferry.net.probe import NetProber, Prober
from ferry.proxy.routes import Backend, RouteTable

FAILING_RETRY_SECONDS = 0.25

__all__ = ["CheckTarget", "HealthBook", "HealthChecker", "Prober", "check_targets"]


class HealthBook:
    """Which machines are out of rotation, and why. Runs on the event loop."""

    def __init__(self, *, cooldown: float = 2.0) -> None:
        self.health: dict[str, bool] = {}
        self.checked: dict[str, bool] = {}  # failing active checks only
        self.reported: set[str] = set()  # machines with an active check result (any)
        self._failing_checks: dict[str, set[str]] = {}
        self._cooldown_until: dict[str, asyncio.TimerHandle] = {}
        self._cooldown = cooldown

    def _update(self, machine_id: str) -> None:
        failing = bool(self._failing_checks.get(machine_id))
        if failing:
            self.checked[machine_id] = False
        else:
            self.checked.pop(machine_id, None)
        if failing or machine_id in self._cooldown_until:
            self.health[machine_id] = False
        else:
            self.health.pop(machine_id, None)

    def set_check(self, machine_id: str, check: str, passing: bool) -> None:
        """Record an active check result; idempotent."""
        self.reported.add(machine_id)
        failing = self._failing_checks.setdefault(machine_id, set())
        if passing:
            failing.discard(check)
            if not failing:
                del self._failing_checks[machine_id]
        else:
            failing.add(check)
        self._update(machine_id)

    def mark_refused(self, machine_id: str) -> None:
        """Take a machine out for the cooldown after a failed connect (needs a running loop)."""
        handle = self._cooldown_until.pop(machine_id, None)
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        self._cooldown_until[machine_id] = loop.call_later(
            self._cooldown, self._end_cooldown, machine_id
        )
        self._update(machine_id)

    def _end_cooldown(self, machine_id: str) -> None:
        self._cooldown_until.pop(machine_id, None)
        self._update(machine_id)

    def forget(self, machine_id: str) -> None:
        """Drop everything known about a machine that left the table."""
        self._failing_checks.pop(machine_id, None)
        self.reported.discard(machine_id)
        handle = self._cooldown_until.pop(machine_id, None)
        if handle is not None:
            handle.cancel()
        self.health.pop(machine_id, None)
        self.checked.pop(machine_id, None)

    def close(self) -> None:
        for handle in self._cooldown_until.values():
            handle.cancel()
        self._cooldown_until.clear()


@dataclass(frozen=True)
class CheckTarget:
    """One check of one machine: where and how to probe."""

    machine_id: str
    name: str
    address: str
    port: int
    check: CheckConfig

    @property
    def key(self) -> tuple[str, str]:
        return (self.machine_id, self.name)


def check_targets(backends: list[Backend]) -> list[CheckTarget]:
    """The service checks of started machines (pure)."""
    out: list[CheckTarget] = []
    for backend in backends:
        if not backend.started:
            continue
        for s_index, service in enumerate(backend.services):
            for c_index, check in enumerate(service.checks):
                name = f"service{s_index}-{check.type}{c_index}"
                port = check.port or service.internal_port
                out.append(CheckTarget(backend.machine_id, name, backend.address, port, check))
    return out


class HealthChecker:
    """Runs every machine's checks in the background; ``sync`` follows the table."""

    def __init__(self, book: HealthBook, prober: Prober | None = None) -> None:
        self._book = book
        self._prober: Prober = prober or NetProber()
        self._tasks: dict[tuple[str, str], tuple[CheckTarget, asyncio.Task[None]]] = {}

    def sync(self, table: RouteTable) -> None:
        """Start checks of new machines, stop those of gone ones; idempotent."""
        wanted = {t.key: t for t in check_targets([b for bs in table.apps.values() for b in bs])}
        for key, (target, task) in list(self._tasks.items()):
            if wanted.get(key) != target:
                task.cancel()
                del self._tasks[key]
                self._book.set_check(target.machine_id, target.name, True)
        for key, target in wanted.items():
            if key not in self._tasks:
                task = asyncio.get_running_loop().create_task(self._run(target))
                self._tasks[key] = (target, task)
        known = {t.machine_id for t in wanted.values()} | {
            b.machine_id for bs in table.apps.values() for b in bs
        }
        for machine_id in list(self._book.health):
            if machine_id not in known:
                self._book.forget(machine_id)

    async def _run(self, target: CheckTarget) -> None:
        check = target.check
        interval = max(parse_duration(check.interval), 0.05)
        await asyncio.sleep(parse_duration(check.grace_period))
        while True:
            try:
                ok = (await self._prober.probe(target.address, target.port, check)).passed
            except Exception:  # a broken prober fails this check; the task lives on
                ok = False
            self._book.set_check(target.machine_id, target.name, ok)
            # A failing machine is probed again soon: one that had not bound its port
            # yet when first checked comes back in a fraction of a second, not an interval.
            await asyncio.sleep(interval if ok else min(interval, FAILING_RETRY_SECONDS))

    async def close(self) -> None:
        """Stop every check task and wait for them."""
        tasks = [task for _, task in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
