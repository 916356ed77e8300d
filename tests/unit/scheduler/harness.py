"""A test harness for the scheduler, after Nomad's ``scheduler/tests/testing.go``.

Add mock hosts, submit requests, and assert on what was recorded::

    h = Harness()
    h.add_host("ams-1", cpus=4, memory_mb=8192)
    h.submit("web", count=2)
    assert h.hosts_of("web") == ["ams-1", "ams-1"]

Every submission goes through a ``Scheduler`` and, unless ``check_reference``
is off, is checked against ``place_machine`` on the snapshot taken just before
it, so each test also proves the index and the plain rule agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ferry.scheduler import (
    HostCapacity,
    NoPlacement,
    Placement,
    PlacementRequest,
    Scheduler,
    place_machine,
)


@dataclass(frozen=True)
class Submission:
    """One request the harness sent and what came back."""

    request: PlacementRequest
    outcome: Placement | NoPlacement


class Harness:
    """Mock hosts in, requests through a ``Scheduler``, outcomes recorded in order."""

    def __init__(self, *, check_reference: bool = True) -> None:
        self.check_reference = check_reference
        self.submissions: list[Submission] = []
        self._hosts: list[HostCapacity] = []
        self._scheduler: Scheduler | None = None

    def add_host(
        self,
        host_id: str,
        region: str = "ams",
        cpus: int = 8,
        memory_mb: int = 16384,
        *,
        used_cpus: int = 0,
        used_memory_mb: int = 0,
        apps: Mapping[str, int] | None = None,
        up: bool = True,
    ) -> HostCapacity:
        """Add a host; allowed after submissions too (the index is rebuilt)."""
        host = HostCapacity(
            host_id=host_id,
            region=region,
            cpus=cpus,
            memory_mb=memory_mb,
            used_cpus=used_cpus,
            used_memory_mb=used_memory_mb,
            app_machines=dict(apps or {}),
            up=up,
        )
        self._hosts = [*self.snapshot(), host]
        self._scheduler = None
        return host

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            self._scheduler = Scheduler(self._hosts)
        return self._scheduler

    def submit(
        self, app: str, region: str = "ams", cpus: int = 1, memory_mb: int = 256, count: int = 1
    ) -> list[Placement | NoPlacement]:
        """Place ``count`` machines of one size, one after another; return the outcomes."""
        outcomes: list[Placement | NoPlacement] = []
        for _ in range(count):
            request = PlacementRequest(app=app, region=region, cpus=cpus, memory_mb=memory_mb)
            expected = place_machine(request, self.snapshot()) if self.check_reference else None
            outcome = self.scheduler.place(request)
            if expected is not None:
                assert outcome == expected, f"Scheduler chose {outcome}, place_machine {expected}"
            self.submissions.append(Submission(request, outcome))
            outcomes.append(outcome)
        return outcomes

    def release(self, host_id: str, app: str, cpus: int = 1, memory_mb: int = 256) -> None:
        self.scheduler.release(host_id, app, cpus, memory_mb)

    def snapshot(self) -> list[HostCapacity]:
        return self.scheduler.snapshot() if self._scheduler is not None else list(self._hosts)

    @property
    def placements(self) -> list[Placement]:
        return [s.outcome for s in self.submissions if isinstance(s.outcome, Placement)]

    @property
    def refusals(self) -> list[NoPlacement]:
        return [s.outcome for s in self.submissions if isinstance(s.outcome, NoPlacement)]

    def hosts_of(self, app: str) -> list[str]:
        """Hosts chosen for ``app``'s machines, in submission order."""
        return [
            s.outcome.host_id
            for s in self.submissions
            if s.request.app == app and isinstance(s.outcome, Placement)
        ]

    def spread_of(self, app: str) -> dict[str, int]:
        """Machines of ``app`` placed by this harness, per host."""
        return dict(Counter(self.hosts_of(app)))

    def host(self, host_id: str) -> HostCapacity:
        """The host as the scheduler sees it now."""
        return next(h for h in self.snapshot() if h.host_id == host_id)
