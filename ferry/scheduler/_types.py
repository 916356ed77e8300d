"""The values the scheduler takes and returns: host capacities, requests, outcomes.

All four are frozen dataclasses (not pydantic models) because the scheduler
builds and reads them in hot loops. ``HostCapacity`` and ``PlacementRequest``
check themselves on construction and raise ``ValidationError`` with a message
that names the bad field and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ferry.errors import ValidationError

__all__ = ["HostCapacity", "NoPlacement", "Placement", "PlacementRequest"]


@dataclass(frozen=True)
class HostCapacity:
    """What the scheduler knows about one host at the moment of a snapshot.

    ``used_cpus`` and ``used_memory_mb`` sum the guests of the host's machines
    that are not destroyed; ``app_machines`` counts those machines per app.
    A host that is not ``up`` never receives machines. Used figures above the
    capacity are accepted (an over-committed host simply has no room).

    Raises ``ValidationError`` when a field is empty or out of range.
    """

    host_id: str
    region: str
    cpus: int
    memory_mb: int
    used_cpus: int = 0
    used_memory_mb: int = 0
    app_machines: Mapping[str, int] = field(default_factory=dict)
    up: bool = True

    def __post_init__(self) -> None:
        if not self.host_id:
            raise ValidationError(
                "a host capacity has an empty host_id", hint="give every host an id"
            )
        where = f"host {self.host_id}"
        if not self.region:
            raise ValidationError(f"{where} has an empty region", hint="set its region code")
        _require_at_least(1, self.cpus, f"{where}: cpus")
        _require_at_least(1, self.memory_mb, f"{where}: memory_mb")
        _require_at_least(0, self.used_cpus, f"{where}: used_cpus")
        _require_at_least(0, self.used_memory_mb, f"{where}: used_memory_mb")
        for app, count in self.app_machines.items():
            _require_at_least(0, count, f"{where}: machines of app {app!r}")

    @property
    def free_cpus(self) -> int:
        """CPUs not yet used; negative when the host is over-committed."""
        return self.cpus - self.used_cpus

    @property
    def free_memory_mb(self) -> int:
        """Memory not yet used; negative when the host is over-committed."""
        return self.memory_mb - self.used_memory_mb


@dataclass(frozen=True)
class PlacementRequest:
    """One machine of ``app`` that needs ``cpus`` and ``memory_mb`` in ``region``.

    Raises ``ValidationError`` when a field is empty or below 1.
    """

    app: str
    region: str
    cpus: int
    memory_mb: int

    def __post_init__(self) -> None:
        if not self.app:
            raise ValidationError("a placement request has an empty app name", hint="name the app")
        if not self.region:
            raise ValidationError(
                f"the placement request for app {self.app} has an empty region",
                hint="name a region such as ams",
            )
        _require_at_least(1, self.cpus, f"placement request for app {self.app}: cpus")
        _require_at_least(1, self.memory_mb, f"placement request for app {self.app}: memory_mb")


@dataclass(frozen=True)
class Placement:
    """The machine goes on ``host_id``; ``reason`` says why in one line."""

    host_id: str
    region: str
    reason: str


@dataclass(frozen=True)
class NoPlacement:
    """No host can take the machine; ``reason`` names the region and the shortfall."""

    region: str
    reason: str


def _require_at_least(minimum: int, value: int, what: str) -> None:
    # bool is an int subclass; True as a cpu count is a caller bug, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValidationError(f"{what} must be at least {minimum}, got {value}")
