"""Marks hosts down when their heartbeats stop: a level-triggered control loop.

``hosts_to_mark_down`` is the pure decision; ``HostLiveness.run_once`` reads a
fresh snapshot, applies the decision and returns a one-line reason, which
``run_forever`` logs every cycle (at INFO when it changed, DEBUG otherwise).
A host comes back up when it heartbeats or re-registers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from ferry.model import Host, HostStatus
from ferry.server.clock import Clock
from ferry.store import StateStore

__all__ = ["HostLiveness", "hosts_to_mark_down", "liveness_reason"]

log = logging.getLogger("ferry.server.liveness")


def _silence(host: Host, now: datetime) -> float:
    return (now - host.last_heartbeat).total_seconds()


def hosts_to_mark_down(hosts: Sequence[Host], now: datetime, down_after: float) -> list[Host]:
    """The hosts still marked up whose last heartbeat is older than ``down_after`` seconds."""
    return [h for h in hosts if h.status is HostStatus.UP and _silence(h, now) > down_after]


def liveness_reason(hosts: Sequence[Host], now: datetime, down_after: float) -> str:
    """One line describing the hosts after a cycle, naming every silent host.

    Example: ``"host ams-1 down: no heartbeat for 12.3s; 2 hosts up"``.
    """
    if not hosts:
        return "no hosts registered"
    silent = [h for h in hosts if _silence(h, now) > down_after]
    parts = [f"host {h.id} down: no heartbeat for {_silence(h, now):.1f}s" for h in silent]
    up = len(hosts) - len(silent)
    parts.append(f"{up} host{'s' if up != 1 else ''} up")
    return "; ".join(parts)


class HostLiveness:
    """Applies ``hosts_to_mark_down`` to the store. Blocking I/O through ``StateStore``."""

    def __init__(self, store: StateStore, clock: Clock, *, down_after: float = 10.0) -> None:
        self._store = store
        self._clock = clock
        self.down_after = down_after
        self._last_reason = ""

    def run_once(self) -> str:
        """One cycle: mark silent hosts down; return the reason line. Idempotent."""
        now = self._clock.now()
        hosts = self._store.list_hosts()
        for host in hosts_to_mark_down(hosts, now, self.down_after):
            self._store.set_host_status(host.id, HostStatus.DOWN)
            log.warning("host %s down: no heartbeat for %.1fs", host.id, _silence(host, now))
        return liveness_reason(hosts, now, self.down_after)

    async def run_forever(self, interval: float | None = None) -> None:
        """Run cycles until cancelled; a failing cycle is logged and the loop goes on."""
        period = interval if interval is not None else min(1.0, self.down_after / 4)
        while True:
            try:
                reason = await asyncio.to_thread(self.run_once)
                level = logging.INFO if reason != self._last_reason else logging.DEBUG
                log.log(level, "liveness: %s", reason)
                self._last_reason = reason
            except Exception:
                log.exception("liveness cycle failed; retrying in %.1fs", period)
            await asyncio.sleep(period)
