"""The values the autoscaler's pure decision takes and returns.

``Decision`` is one action (or ``none``) with a one-line reason naming the
numbers behind it. ``PolicyMemory`` is everything the decision remembers from
one cycle to the next (when a shortfall began, when a machine was last busy);
``decide`` takes one and returns the next, so it stays pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from ferry.autoscale.demand import RegionDemand
from ferry.model import DesiredState, Machine, MachineState

__all__ = [
    "Decision",
    "DecisionKind",
    "PolicyMemory",
    "PolicyOutcome",
    "RegionView",
    "is_running",
    "is_stopped",
]

DecisionKind = Literal["create", "start", "stop", "suspend", "destroy", "none"]

_GONE = {MachineState.DESTROYING, MachineState.DESTROYED}


def is_running(machine: Machine) -> bool:
    """Wanted started and not failed or gone: it serves, or soon will."""
    return (
        machine.desired_state is DesiredState.STARTED
        and machine.state not in _GONE
        and machine.state is not MachineState.FAILED
    )


def is_stopped(machine: Machine) -> bool:
    """Wanted stopped or suspended and still there: it can be started again."""
    return (
        machine.desired_state in (DesiredState.STOPPED, DesiredState.SUSPENDED)
        and machine.state not in _GONE
    )


@dataclass(frozen=True)
class Decision:
    """One thing to do. ``region`` is where (for ``create``: where it is wanted)."""

    kind: DecisionKind
    reason: str
    region: str | None = None
    machine_id: str | None = None
    rule: str = ""  # "scale-out", "scale-in", "destroy", "idle-stop" or ""


@dataclass(frozen=True)
class PolicyMemory:
    """What one cycle leaves for the next; all timestamps are the ``now`` of some cycle.

    ``placed_for`` maps a machine created in another region (capacity fallback)
    to the region it was created for, so it counts there.
    """

    shortfall_since: Mapping[str, datetime] = field(default_factory=dict)
    excess_since: Mapping[str, datetime] = field(default_factory=dict)
    active_at: Mapping[str, datetime] = field(default_factory=dict)
    last_requests: Mapping[str, int] = field(default_factory=dict)
    scaled_in_at: Mapping[str, datetime] = field(default_factory=dict)
    placed_for: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RegionView:
    """One region as the last decision saw it (what ``ferry autoscale status`` shows)."""

    region: str
    started: int
    stopped: int
    demand: RegionDemand
    desired: int | None  # None when the region is not under the policy


@dataclass(frozen=True)
class PolicyOutcome:
    """What ``decide`` returns: the actions, the next memory, and the view it decided on."""

    decisions: list[Decision]
    memory: PolicyMemory
    regions: dict[str, RegionView]
    target_concurrency: int
