"""Pure deploy planning: which regions, and which machines to update or create, in what order.

Nothing here does I/O. ``choose_regions`` decides where an app runs,
``plan_deploy`` turns (existing machines, target regions, strategy) into an
ordered list of steps the rollout executes, and ``rolling_batches`` splits
those steps into the groups a rolling rollout replaces at once
(``[deploy] max_unavailable``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from ferry.errors import ValidationError
from ferry.model import DesiredState, Machine, MachineState

Strategy = Literal["rolling", "immediate", "canary", "bluegreen"]
STRATEGIES: tuple[Strategy, ...] = ("rolling", "immediate", "canary", "bluegreen")

_GONE = {MachineState.DESTROYING, MachineState.DESTROYED}

#: fly.toml's ``[deploy] max_unavailable`` default, and flyctl's ``--max-unavailable`` one.
DEFAULT_MAX_UNAVAILABLE = 0.33
#: The process group of a machine whose config names none (Fly's default).
DEFAULT_GROUP = "app"


@dataclass(frozen=True)
class DeployStep:
    """One thing the rollout does: update machine ``machine_id`` or create a machine in ``region``.

    ``group`` is the process group the machine runs (``[processes]``; ``app``
    without it). ``wait_started`` is False for a machine the user stopped: it
    gets the new config but stays stopped, so there is nothing to wait for.
    """

    kind: Literal["update", "create"]
    region: str
    machine_id: str | None = None
    instance_id: str | None = None
    wait_started: bool = True
    group: str = DEFAULT_GROUP

    @property
    def label(self) -> str:
        """``3d8d1a2b4c5e6f (ams)``, ``new machine (ams)``; other groups than ``app`` named."""
        who = self.machine_id if self.machine_id else "new machine"
        where = self.region if self.group == DEFAULT_GROUP else f"{self.region}, {self.group}"
        return f"{who} ({where})"


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


def machine_group(machine: Machine) -> str:
    """The process group a machine runs: its ``fly_process_group`` metadata, as Fly sets it."""
    return machine.config.metadata.get("fly_process_group") or DEFAULT_GROUP


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
    machines: Sequence[Machine],
    regions: Sequence[str],
    strategy: Strategy,
    groups: Sequence[str] = (DEFAULT_GROUP,),
    *,
    fill_regions: bool = True,
) -> DeployPlan:
    """Steps that bring every target region to the new version, group by group.

    Per region (in the order of ``regions``) and per process group (in the
    order of ``groups``): every live machine of the group there is updated
    (oldest first, so the rollout order is stable). New machines: with
    ``fill_regions`` (``--regions`` given, or an app with one group) a group
    with no live machine in a target region gets one there; without it a
    group gets one only when it has no live machine at all, in the first
    target region — so a worker scaled to one machine in ams does not gain a
    copy in every region the web group runs in. Machines in other regions
    are left alone. Raises ``ValidationError`` for an unknown strategy, or
    when live machines run a group that ``groups`` no longer has (naming it
    and how to remove them), since updating them would silently change what
    they run.
    """
    if strategy not in STRATEGIES:
        raise ValidationError(
            f"unknown deploy strategy {strategy!r}",
            hint="use rolling, immediate, canary or bluegreen",
        )
    live = live_machines(machines)
    stale = sorted({machine_group(m) for m in live} - set(groups))
    if stale:
        names = ", ".join(stale)
        raise ValidationError(
            f"machines run the process group {names}, which fly.toml no longer defines"
            f" (groups: {', '.join(groups)})",
            hint=f"remove them first with `ferry scale count {stale[0]}=0`, or add the group"
            " back to [processes]",
        )
    running = {machine_group(m) for m in live}
    steps: list[DeployStep] = []
    for index, region in enumerate(regions):
        for group in groups:
            here = sorted(
                (m for m in live if m.region == region and machine_group(m) == group),
                key=lambda m: (m.created_at, m.id),
            )
            for machine in here:
                steps.append(
                    DeployStep(
                        kind="update",
                        region=region,
                        machine_id=machine.id,
                        instance_id=machine.instance_id,
                        wait_started=machine.desired_state is DesiredState.STARTED,
                        group=group,
                    )
                )
            if not here and (fill_regions or (group not in running and index == 0)):
                steps.append(DeployStep(kind="create", region=region, group=group))
    return DeployPlan(strategy=strategy, regions=tuple(regions), steps=tuple(steps))


def check_max_unavailable(value: float, *, source: str = "max_unavailable") -> float:
    """Return ``value`` when it is a valid ``max_unavailable``, else raise ``ValidationError``.

    Valid, as for fly.toml's ``[deploy] max_unavailable``: a whole number >= 1
    (a count of machines; ``1.0`` is one machine, not all of them) or a
    fraction strictly between 0 and 1. ``source`` names the setting in the
    message (``--max-unavailable`` for the flag).
    """
    whole = math.isfinite(value) and value >= 1 and value == int(value)
    if not (whole or 0 < value < 1):
        raise ValidationError(
            f"{source} must be a whole number of machines (1 or more) or a fraction"
            f" between 0 and 1, got {value:g}",
            hint="e.g. 2 to replace two machines at a time, or 0.25 for a quarter of them",
        )
    return value


def parse_max_unavailable(text: str) -> float:
    """``--max-unavailable``: ``"3"`` → 3.0, ``"0.25"`` → 0.25; ``ValidationError`` otherwise."""
    try:
        value = float(text.strip())
    except ValueError:
        raise ValidationError(
            f"--max-unavailable must be a number, got {text!r}",
            hint="e.g. 2 to replace two machines at a time, or 0.25 for a quarter of them",
        ) from None
    return check_max_unavailable(value, source="--max-unavailable")


def rolling_batch_size(max_unavailable: float, running: int) -> int:
    """How many steps a rolling rollout launches together; always >= 1.

    A whole ``max_unavailable`` >= 1 is the count itself. A fraction ``f``
    gives ``max(1, floor(f * running))``, where ``running`` is the number of
    machines the plan updates that are meant to be running — those are the
    ones a batch takes out of service; machines the user stopped and new
    machines make nothing unavailable, so they do not raise the size. Rounding
    down is Kubernetes' rule for ``maxUnavailable`` percentages (flyctl rounds
    up): 10 machines at the default 0.33 give 3, and 2 machines give 1.
    Raises ``ValidationError`` for an invalid ``max_unavailable``.
    """
    check_max_unavailable(max_unavailable)
    if max_unavailable >= 1:
        return int(max_unavailable)
    # Exact decimal arithmetic: 0.29 * 100 in binary floats is 28.999…, not 29.
    return max(1, math.floor(Fraction(repr(max_unavailable)) * running))


def _is_running_update(step: DeployStep) -> bool:
    return step.kind == "update" and step.wait_started


def rolling_batches(
    steps: Sequence[DeployStep], max_unavailable: float
) -> list[tuple[DeployStep, ...]]:
    """Split a rolling plan's steps into batches the rollout replaces together.

    Every step (update, create, or update of a stopped machine) takes one of
    the ``rolling_batch_size`` places of a batch, so ``max_unavailable = 1``
    is one step at a time, exactly as before batching existed.

    Ferry extra, not in flyctl: a batch never holds every running machine of
    a region that has more than one, so each such region keeps a machine on
    the old version serving while its others are replaced, and its edge need
    not send users to another region. A region with a single running machine
    cannot be kept up that way; its machine is batched like any other.
    Creates (regions with no machine yet) and machines the user stopped
    (``wait_started=False``) serve nothing, so the guard ignores them.

    Order: each batch takes the earliest steps not yet batched that fit, in
    plan order; a step waits for a later batch only when the batch is full or
    the region guard keeps it out, and later steps then move up into the free
    places. Every step lands in exactly one batch. Pure; raises
    ``ValidationError`` for an invalid ``max_unavailable``.
    """
    running = Counter(step.region for step in steps if _is_running_update(step))
    size = rolling_batch_size(max_unavailable, sum(running.values()))
    pending = list(steps)
    batches: list[tuple[DeployStep, ...]] = []
    while pending:
        batch: list[DeployStep] = []
        taken: Counter[str] = Counter()
        left: list[DeployStep] = []
        for step in pending:
            guarded = _is_running_update(step) and running[step.region] > 1
            if len(batch) >= size or (guarded and taken[step.region] + 1 >= running[step.region]):
                left.append(step)
                continue
            batch.append(step)
            if _is_running_update(step):
                taken[step.region] += 1
        batches.append(tuple(batch))
        pending = left
    return batches
