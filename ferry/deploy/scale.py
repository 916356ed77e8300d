"""Pure planning of ``ferry scale count``: how many machines to add, which to remove."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ferry.deploy.plan import live_machines
from ferry.errors import ValidationError
from ferry.model import Machine, MachineState

#: Removal order: machines doing least for users go first.
_REMOVAL_RANK = {
    MachineState.FAILED: 0,
    MachineState.STOPPED: 1,
    MachineState.CREATED: 2,
    MachineState.STOPPING: 3,
}


@dataclass(frozen=True)
class ScalePlan:
    region: str
    current: int
    target: int
    template: Machine | None  # the machine whose config new ones copy
    destroy: tuple[Machine, ...]

    @property
    def create(self) -> int:
        return max(0, self.target - self.current)


def default_scale_region(machines: Sequence[Machine], primary_region: str | None) -> str:
    """The region ``scale count`` acts on without ``--region``.

    ``primary_region`` when known, else the one region the app's machines run
    in. Raises ``ValidationError`` when neither decides it.
    """
    if primary_region:
        return primary_region
    regions = sorted({m.region for m in live_machines(machines)})
    if len(regions) == 1:
        return regions[0]
    if not regions:
        raise ValidationError("the app has no machines yet", hint="deploy first: `ferry deploy`")
    raise ValidationError(
        f"the app runs in several regions ({', '.join(regions)})",
        hint="pass --region to say which one to scale",
    )


def plan_scale(machines: Sequence[Machine], region: str, target: int) -> ScalePlan:
    """Reach ``target`` live machines in ``region``.

    New machines copy the config of a live machine in that region (else any
    live machine of the app). Extra machines are removed failed/stopped first,
    then the newest. Raises ``ValidationError`` for a negative target or when
    machines must be created but the app has none to copy ("deploy first").
    """
    if target < 0:
        raise ValidationError(
            f"cannot scale to {target} machines", hint="give a count of 0 or more"
        )
    live = live_machines(machines)
    here = [m for m in live if m.region == region]
    template = _newest(here) or _newest(live)
    if target > len(here) and template is None:
        raise ValidationError(
            "the app has no machine to copy the configuration from",
            hint="deploy first: `ferry deploy`",
        )
    removal_order = sorted(
        here,
        key=lambda m: (_REMOVAL_RANK.get(m.state, 9), -m.created_at.timestamp(), m.id),
    )
    extra = max(0, len(here) - target)
    return ScalePlan(
        region=region,
        current=len(here),
        target=target,
        template=template,
        destroy=tuple(removal_order[:extra]),
    )


def _newest(machines: Sequence[Machine]) -> Machine | None:
    return max(machines, key=lambda m: (m.created_at, m.id), default=None)
