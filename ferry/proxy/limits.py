"""The edge's limits and timeouts, and the load it tracks per machine.

``ProxyLimits`` is plain configuration. ``LoadTracker`` counts what each
machine is serving (requests or connections, as its service says) and holds
the bounded per-app queue of requests waiting for a machine under its hard
limit. Single-threaded: everything runs on the proxy's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

from ferry.errors import ValidationError

__all__ = ["LoadTracker", "ProxyLimits"]


@dataclass(frozen=True)
class ProxyLimits:
    """Limits of the HTTP edge; sizes in bytes, times in seconds."""

    max_header_bytes: int = 64 * 1024  # request line + headers -> 431 beyond
    max_request_line: int = 8 * 1024  # -> 431 beyond (414 would need the line parsed)
    max_body_bytes: int | None = 100 * 1024 * 1024  # -> 413; None: unlimited
    replay_buffer_bytes: int = 1024 * 1024  # bodies up to this size can be replayed/retried
    header_timeout: float = 10.0  # a client must send its headers within this -> 408
    idle_timeout: float = 60.0  # keep-alive connections idle longer are closed
    connect_timeout: float = 2.0  # upstream connect; then the next machine is tried
    response_timeout: float = 60.0  # upstream response headers -> 504
    connect_attempts: int = 3  # tries in a row (the next machine at once) ...
    # ... then more, with a growing pause, while this lasts: the routing table lags the
    # control plane for a moment (a machine that just stopped is still listed; once the
    # table says so, the request wakes it instead of failing).
    retry_window: float = 2.0
    queue_wait: float = 1.0  # how long a request waits for a machine under its hard limit
    queue_max_waiters: int = 100  # per app; more -> 503 at once
    upstream_idle_per_backend: int = 64  # pooled idle keep-alive connections per machine
    upstream_idle_timeout: float = 4.0
    unhealthy_cooldown: float = 2.0  # a machine that refused a connection leaves rotation this long
    tick: float = 0.25  # granularity of the timeout sweep

    def __post_init__(self) -> None:
        for name in (
            "max_header_bytes",
            "max_request_line",
            "connect_attempts",
            "queue_max_waiters",
        ):
            if getattr(self, name) < 1:
                raise ValidationError(f"proxy limit {name} must be at least 1")
        for name in (
            "header_timeout",
            "idle_timeout",
            "connect_timeout",
            "response_timeout",
            "tick",
        ):
            if getattr(self, name) <= 0:
                raise ValidationError(f"proxy timeout {name} must be positive")
        if self.retry_window < 0:
            raise ValidationError("proxy timeout retry_window must not be negative")
        if self.max_body_bytes is not None and self.max_body_bytes < 0:
            raise ValidationError("proxy limit max_body_bytes must not be negative")

    def body_allowed(self, content_length: int | None) -> bool:
        """Whether a declared body length is within ``max_body_bytes``."""
        return (
            content_length is None
            or self.max_body_bytes is None
            or content_length <= self.max_body_bytes
        )


class LoadTracker:
    """In-flight load per machine, and the per-app overflow queue.

    ``load`` is the live mapping routing reads. ``release`` wakes the oldest
    waiter of the app so it can route again.
    """

    def __init__(self, *, max_waiters: int = 100) -> None:
        self.load: dict[str, int] = {}
        self.totals: dict[str, int] = {}  # machine id -> requests routed to it since start
        self._apps: dict[str, str] = {}  # machine id -> app, for the gauge
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._max_waiters = max_waiters

    def acquire(self, app: str, machine_id: str) -> None:
        self.load[machine_id] = self.load.get(machine_id, 0) + 1
        self.totals[machine_id] = self.totals.get(machine_id, 0) + 1
        self._apps[machine_id] = app

    def release(self, app: str, machine_id: str) -> None:
        left = self.load.get(machine_id, 0) - 1
        if left > 0:
            self.load[machine_id] = left
        else:
            self.load.pop(machine_id, None)
        waiters = self._waiters.get(app)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def by_app(self) -> dict[str, dict[str, int]]:
        """Current load as app -> machine id -> count (for metrics)."""
        out: dict[str, dict[str, int]] = {}
        for machine_id, count in self.load.items():
            out.setdefault(self._apps.get(machine_id, ""), {})[machine_id] = count
        return out

    def machines_of(self, app: str) -> dict[str, tuple[int, int]]:
        """Machine id -> (in flight now, requests since start) for ``app`` (for reports)."""
        return {
            machine_id: (self.load.get(machine_id, 0), total)
            for machine_id, total in self.totals.items()
            if self._apps.get(machine_id) == app
        }

    def waiting(self, app: str) -> int:
        return len(self._waiters.get(app, ()))

    async def wait_for_slot(self, app: str, timeout: float) -> bool:
        """Wait until a request of ``app`` finishes, at most ``timeout`` s.

        Returns False at once when the app's queue is full, or on timeout.
        Cancellation-safe: a cancelled waiter leaves the queue.
        """
        waiters = self._waiters.setdefault(app, deque())
        if len(waiters) >= self._max_waiters:
            return False
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(app, None)
