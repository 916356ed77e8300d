"""What the edge proxies last said about traffic, per app and region (for ``ferry status``).

Telemetry, not desired state: kept in memory only, replaced by each report,
and forgotten when a proxy stops reporting for ``stale_after`` seconds.

A report is bounded (``MAX_REPORT_APPS`` apps, ``MAX_REPORT_MACHINES`` machines
in all, ``MAX_STATUS_CLASSES`` status classes per app) and may name only apps
and machines the store knows (``unknown_in_report``); the route refuses
anything else whole, so nothing of a bad report is stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from pydantic import BaseModel, Field, model_validator

#: Apps one edge report may name.
MAX_REPORT_APPS = 1000
#: Machines one edge report may name, over all its apps.
MAX_REPORT_MACHINES = 10_000
#: Status classes ("2xx") per app.
MAX_STATUS_CLASSES = 8


class MachineLoad(BaseModel):
    """What one edge sees of one machine: its requests in flight from this edge right now."""

    in_flight: int = 0
    requests_total: int = 0  # cumulative since the proxy started


class AppTraffic(BaseModel):
    """One app's traffic through one edge (clients in that edge's region).

    Counters are cumulative since the proxy started (``window_seconds`` ago):
    rates are the difference between two reports over the time between them.
    """

    # status class ("2xx") -> count
    requests: dict[str, int] = Field(default_factory=dict, max_length=MAX_STATUS_CLASSES)
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
    apps: dict[str, AppTraffic] = Field(default_factory=dict, max_length=MAX_REPORT_APPS)

    @model_validator(mode="after")
    def _machines_bounded(self) -> EdgeReport:
        count = sum(len(app.machines) for app in self.apps.values())
        if count > MAX_REPORT_MACHINES:
            raise ValueError(
                f"the report names {count} machines; at most {MAX_REPORT_MACHINES} are taken"
            )
        return self


def unknown_in_report(
    report: EdgeReport, machines_of: Callable[[str], Collection[str] | None]
) -> str | None:
    """A sentence naming the first apps/machines of ``report`` the store does not know,
    or ``None`` when it names only known ones. ``machines_of(app)`` gives the ids of an
    app's machines, ``None`` for an unknown app. Pure but for what ``machines_of`` reads."""
    unknown_apps: list[str] = []
    unknown_machines: list[str] = []
    for app, traffic in sorted(report.apps.items()):
        known = machines_of(app)
        if known is None:
            unknown_apps.append(app)
            continue
        unknown_machines += [f"{mid} (app {app})" for mid in traffic.machines if mid not in known]
    parts = []
    if unknown_apps:
        parts.append(f"unknown apps: {_some(unknown_apps)}")
    if unknown_machines:
        parts.append(f"unknown machines: {_some(unknown_machines)}")
    return "; ".join(parts) or None


def _some(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
