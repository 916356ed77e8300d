"""Health checks of started machines, run from the host over the machine's private IP.

The probe itself is ``ferry.net.probe`` (the one the edge uses too: method,
path, headers, ``https`` with TLS, 2xx passes, no redirects followed). Until a
check first passes it is probed every ``FAST_INTERVAL`` seconds, so a deploy
learns quickly; afterwards, or once the instance has run ``FAST_WINDOW`` seconds
(a check that fails by design, such as a Postgres replica's ``/primary``, is not
probed four times a second forever), at its configured interval. The due probes of one
pass run concurrently, so a machine that times out delays no other. Results go
to the control plane only when they change (status or output).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ferry.model import CheckConfig, CheckStatus, Machine, MachineState, parse_duration
from ferry.net.probe import NetProber, Prober, ProbeResult

log = logging.getLogger(__name__)

FAST_INTERVAL = 0.25
FAST_WINDOW = 60.0
DEFAULT_PORT = 8080
#: The report's event status (``name=status, …``) is cut to the length the API takes.
MAX_EVENT_STATUS = 64


class StatusSink(Protocol):
    """Where check results go (``FerryClient``; unit tests pass fakes)."""

    def report_status(
        self,
        host_id: str,
        machine_id: str,
        state: MachineState | str,
        instance_id: str,
        event_type: str,
        event_status: str,
        *,
        checks: Sequence[CheckStatus] | None = None,
    ) -> object: ...


def machine_checks(m: Machine) -> dict[str, CheckConfig]:
    """Every check of a machine: top-level ``checks`` and its services' checks (named like Fly)."""
    found = dict(m.config.checks)
    for service in m.config.services:
        for i, check in enumerate(service.checks):
            name = f"servicecheck-{i:02d}-{check.type}-{service.internal_port}"
            if check.port is None:
                check = check.model_copy(update={"port": service.internal_port})
            found[name] = check
    return found


@dataclass
class _CheckState:
    status: str = "warning"
    output: str = "not yet checked"
    next_at: float = 0.0
    ever_passed: bool = False


@dataclass
class CheckTracker:
    """Schedules and remembers checks per machine instance. Not thread-safe: one thread uses it."""

    clock: Callable[[], float] = time.monotonic
    prober: Prober = field(default_factory=NetProber)
    _states: dict[tuple[str, str, str], _CheckState] = field(default_factory=dict)
    _started_at: dict[tuple[str, str], float] = field(default_factory=dict)
    _unreported: set[tuple[str, str]] = field(default_factory=set)

    def run_due(self, machines: Iterable[Machine]) -> list[tuple[Machine, list[dict[str, str]]]]:
        """Probe every due check of ``machines`` (concurrently; blocking until all are done,
        at most the longest check timeout); return machines whose check results changed.

        Never raises for a probe: a check whose probe fails in any way is ``critical``
        with the error as its output, and the other machines' checks are unaffected.
        """
        now = self.clock()
        machines = list(machines)
        due: list[tuple[Machine, str, CheckConfig]] = []
        live: set[tuple[str, str, str]] = set()
        for m in machines:
            self._started_at.setdefault((m.id, m.instance_id), now)
            grace_from = self._started_at[(m.id, m.instance_id)]
            for name, check in machine_checks(m).items():
                key = (m.id, m.instance_id, name)
                live.add(key)
                state = self._states.setdefault(key, _CheckState())
                if now >= state.next_at and now >= grace_from + parse_duration(check.grace_period):
                    due.append((m, name, check))
        results = asyncio.run(self._probe_all(due)) if due else []
        dirty, self._unreported = self._unreported, set()
        for (m, name, check), result in zip(due, results, strict=True):
            state = self._states[(m.id, m.instance_id, name)]
            status = "passing" if result.passed else "critical"
            state.ever_passed |= result.passed
            started = self._started_at[(m.id, m.instance_id)]
            fast = not state.ever_passed and now - started < FAST_WINDOW
            interval = FAST_INTERVAL if fast else parse_duration(check.interval)
            state.next_at = now + max(interval, 0.05)
            if (status, result.output) != (state.status, state.output):
                dirty.add((m.id, m.instance_id))
                if status == "critical":
                    log.info("machine %s: check %s critical: %s", m.id, name, result.output)
            state.status, state.output = status, result.output
        for key in set(self._states) - live:
            del self._states[key]
        return [(m, self.results(m)) for m in machines if (m.id, m.instance_id) in dirty]

    def report_failed(self, m: Machine) -> None:
        """The results of ``m`` did not reach the control plane: return them next pass."""
        self._unreported.add((m.id, m.instance_id))

    def check_and_report(self, machines: Iterable[Machine], sink: StatusSink, host_id: str) -> None:
        """``run_due`` and report each changed machine's results; blocking. A report that
        fails (for any reason) is logged and retried next call; the others still go."""
        for machine, results in self.run_due(machines):
            summary = ", ".join(f"{r['name']}={r['status']}" for r in results)
            try:
                sink.report_status(
                    host_id,
                    machine.id,
                    MachineState.STARTED.value,
                    machine.instance_id,
                    "health",
                    summary[:MAX_EVENT_STATUS],
                    checks=[CheckStatus.model_validate(r) for r in results],
                )
            except Exception as exc:
                log.warning("could not report checks of %s: %s", machine.id, exc)
                self.report_failed(machine)

    async def _probe_all(self, due: list[tuple[Machine, str, CheckConfig]]) -> list[ProbeResult]:
        return list(await asyncio.gather(*(self._probe_one(m, n, c) for m, n, c in due)))

    async def _probe_one(self, m: Machine, name: str, check: CheckConfig) -> ProbeResult:
        try:
            return await self.prober.probe(m.host_ip, check.port or DEFAULT_PORT, check)
        except Exception as exc:  # a prober that breaks fails this check, not the pass
            log.warning("machine %s: check %s could not run: %r", m.id, name, exc)
            return ProbeResult(False, f"check could not run: {type(exc).__name__}: {exc}")

    def results(self, m: Machine) -> list[dict[str, str]]:
        return [
            {"name": name, "status": state.status, "output": state.output}
            for (mid, inst, name), state in sorted(self._states.items())
            if mid == m.id and inst == m.instance_id
        ]
