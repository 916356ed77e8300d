"""Health checks of started machines, run from the host over the machine's private IP.

A check is ``http`` (2xx passes, no redirects followed) or ``tcp`` (connect
passes). Until a check first passes it is probed every ``FAST_INTERVAL``
seconds, so a deploy learns quickly; afterwards at its configured interval.
Results go to the control plane only when they change.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ferry.model import CheckConfig, Machine, parse_duration

FAST_INTERVAL = 0.25


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


def probe(address: str, check: CheckConfig) -> tuple[bool, str]:
    """Run one check now; return (passed, one-line output). Blocking up to the check's timeout."""
    timeout = max(parse_duration(check.timeout), 0.1)
    port = check.port or 8080
    try:
        if check.type == "tcp":
            with socket.create_connection((address, port), timeout=timeout):
                return True, f"connected to {address}:{port}"
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            conn.request(check.method, check.path, headers=check.headers)
            response = conn.getresponse()
            response.read(1024)
        finally:
            conn.close()
        ok = 200 <= response.status < 300
        return ok, f"{check.method} {check.path}: HTTP {response.status}"
    except OSError as exc:
        return False, f"{check.type} check on {address}:{port} failed: {exc}"


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
    prober: Callable[[str, CheckConfig], tuple[bool, str]] = probe
    _states: dict[tuple[str, str, str], _CheckState] = field(default_factory=dict)
    _started_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def run_due(self, machines: Iterable[Machine]) -> list[tuple[Machine, list[dict[str, str]]]]:
        """Probe every due check of ``machines``; return machines whose check results changed."""
        now = self.clock()
        changed = []
        live: set[tuple[str, str, str]] = set()
        for m in machines:
            checks = machine_checks(m)
            self._started_at.setdefault((m.id, m.instance_id), now)
            dirty = False
            for name, check in checks.items():
                key = (m.id, m.instance_id, name)
                live.add(key)
                state = self._states.setdefault(key, _CheckState())
                grace = parse_duration(check.grace_period)
                if now < state.next_at or now < self._started_at[(m.id, m.instance_id)] + grace:
                    continue
                passed, output = self.prober(m.private_ip, check)
                status = "passing" if passed else "critical"
                state.ever_passed |= passed
                interval = parse_duration(check.interval) if state.ever_passed else FAST_INTERVAL
                state.next_at = now + max(interval, 0.05)
                if status != state.status:
                    dirty = True
                state.status, state.output = status, output
            if dirty:
                changed.append((m, self.results(m)))
        for key in set(self._states) - live:
            del self._states[key]
        return changed

    def results(self, m: Machine) -> list[dict[str, str]]:
        return [
            {"name": name, "status": state.status, "output": state.output}
            for (mid, inst, name), state in sorted(self._states.items())
            if mid == m.id and inst == m.instance_id
        ]
