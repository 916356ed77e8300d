"""What the edge proxies last said about traffic, per app and region (for ``ferry status``).

Telemetry, not desired state: kept in memory only, replaced by each report,
and forgotten when a proxy stops reporting for ``stale_after`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field


class MachineLoad(BaseModel):
    """What one edge sees of one machine: its requests in flight from this edge right now."""

    in_flight: int = 0
    requests_total: int = 0  # cumulative since the proxy started


class AppTraffic(BaseModel):
    """One app's traffic through one edge (clients in that edge's region).

    Counters are cumulative since the proxy started (``window_seconds`` ago):
    rates are the difference between two reports over the time between them.
    """

    requests: dict[str, int] = Field(default_factory=dict)  # status class ("2xx") -> count
    bytes_in: int = 0
    bytes_out: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    in_flight: int = 0  # requests of this app in flight at this edge now
    unserved_total: int = 0  # requests that found no started machine with room (503 or woken)
    machines: dict[str, MachineLoad] = Field(default_factory=dict)


class EdgeReport(BaseModel):
    """``POST /v1/edges/{region}/traffic`` body."""

    window_seconds: float = Field(gt=0, le=3600)
    apps: dict[str, AppTraffic] = Field(default_factory=dict)


class EdgeTraffic:
    """Thread-safe store of the latest report of each edge."""

    def __init__(self, stale_after: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[float, EdgeReport]] = {}
        self._stale_after = stale_after
        self._clock = clock

    def record(self, region: str, report: EdgeReport) -> None:
        with self._lock:
            self._reports[region] = (self._clock(), report)

    def snapshot(self) -> dict[str, tuple[float, EdgeReport]]:
        """Edge region -> (when received, per this object's clock; its last report), fresh only."""
        now = self._clock()
        with self._lock:
            return {
                region: (at, report)
                for region, (at, report) in self._reports.items()
                if now - at <= self._stale_after
            }

    def for_app(self, app: str) -> dict[str, dict[str, Any]]:
        """Edge region -> that edge's traffic for ``app`` (fresh reports only)."""
        now = self._clock()
        with self._lock:
            fresh = {
                region: report
                for region, (at, report) in self._reports.items()
                if now - at <= self._stale_after
            }
        return {
            region: {"window_seconds": rep.window_seconds, **rep.apps[app].model_dump()}
            for region, rep in sorted(fresh.items())
            if app in rep.apps
        }
