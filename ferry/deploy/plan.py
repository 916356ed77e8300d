"""Pure deploy planning: which regions, and which machines to update or create, in what order.

Nothing here does I/O. ``choose_regions`` decides where an app runs,
``plan_deploy`` turns (existing machines, target regions, strategy) into an
ordered list of steps the rollout executes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ferry.errors import ValidationError
from ferry.model import DesiredState, Machine, MachineState

Strategy = Literal["rolling", "immediate"]
STRATEGIES: tuple[Strategy, ...] = ("rolling", "immediate")

_GONE = {MachineState.DESTROYING, MachineState.DESTROYED}


@dataclass(frozen=True)
class DeployStep:
    """One thing the rollout does: update machine ``machine_id`` or create a machine in ``region``.

    ``wait_started`` is False for a machine the user stopped: it gets the new
    config but stays stopped, so there is nothing to wait for.
    """

    kind: Literal["update", "create"]
    region: str
    machine_id: str | None = None
    instance_id: str | None = None
    wait_started: bool = True

    @property
    def label(self) -> str:
        """``3d8d1a2b4c5e6f (ams)`` or ``new machine (ams)``."""
        who = self.machine_id if self.machine_id else "new machine"
        return f"{who} ({self.region})"


@dataclass(frozen=True)
class DeployPlan:
    strategy: Strategy
    regions: tuple[str, ...]
    steps: tuple[DeployStep, ...]

    @property
    def updates(self) -> tuple[DeployStep, ...]:
        return tuple(step for step in self.steps if step.kind == "update")

    @property
    def creates(self) -> tuple[DeployStep, ...]:
        return tuple(step for step in self.steps if step.kind == "create")


def live_machines(machines: Sequence[Machine]) -> list[Machine]:
    """Machines that are not destroyed or on their way out."""
    return [
        m
        for m in machines
        if m.state not in _GONE and m.desired_state is not DesiredState.DESTROYED
    ]


def parse_regions(text: str | None) -> list[str] | None:
    """``"ams, iad,sin"`` → ``["ams", "iad", "sin"]``, order kept, duplicates dropped."""
    if text is None:
        return None
    regions: list[str] = []
    for part in text.split(","):
        code = part.strip().lower()
        if code and code not in regions:
            regions.append(code)
    if not regions:
        raise ValidationError("--regions is empty", hint="list region codes like ams,iad,sin")
    return regions


def check_regions(requested: Sequence[str], known: Sequence[str]) -> None:
    """Raise ``ValidationError`` naming the unknown codes and listing the known ones."""
    unknown = [code for code in requested if code not in known]
    if unknown:
        names = ", ".join(repr(code) for code in unknown)
        plural = "regions" if len(unknown) > 1 else "region"
        raise ValidationError(
            f"unknown {plural} {names}; known regions: {', '.join(known) or 'none'}",
            hint="run `ferry regions list` to see the cluster's regions",
        )


def choose_regions(
    requested: Sequence[str] | None,
    machines: Sequence[Machine],
    primary_region: str | None,
    cluster_regions: Sequence[str],
) -> list[str]:
    """Where the app should run after this deploy.

    ``requested`` (``--regions``) wins and is validated against the cluster;
    else the regions of the app's live machines (in order of first
    appearance); else ``primary_region``; else the cluster's first region.
    Raises ``ValidationError`` for an unknown region or an empty cluster.
    """
    if requested:
        check_regions(requested, cluster_regions)
        return list(requested)
    existing: list[str] = []
    for machine in live_machines(machines):
        if machine.region not in existing:
            existing.append(machine.region)
    if existing:
        return existing
    if primary_region:
        check_regions([primary_region], cluster_regions)
        return [primary_region]
    if not cluster_regions:
        raise ValidationError(
            "the cluster has no regions with a host to run machines on",
            hint="start the cluster with `ferry cluster up` and wait for its agents",
        )
    return [sorted(cluster_regions)[0]]


def plan_deploy(
    machines: Sequence[Machine], regions: Sequence[str], strategy: Strategy
) -> DeployPlan:
    """Steps that bring every target region to the new version.

    Per region, in the order of ``regions``: every live machine there is
    updated (oldest first, so the rollout order is stable), and a region with
    no live machine gets one new machine. Machines in other regions are left
    alone. Raises ``ValidationError`` for an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValidationError(
            f"unknown deploy strategy {strategy!r}", hint="use 'rolling' or 'immediate'"
        )
    live = live_machines(machines)
    steps: list[DeployStep] = []
    for region in regions:
        here = sorted((m for m in live if m.region == region), key=lambda m: (m.created_at, m.id))
        for machine in here:
            steps.append(
                DeployStep(
                    kind="update",
                    region=region,
                    machine_id=machine.id,
                    instance_id=machine.instance_id,
                    wait_started=machine.desired_state is DesiredState.STARTED,
                )
            )
        if not here:
            steps.append(DeployStep(kind="create", region=region))
    return DeployPlan(strategy=strategy, regions=tuple(regions), steps=tuple(steps))
