"""Pure planning of ``ferry scale count``: how many machines to add, which to remove.

Counts are per process group (``web=2 worker=1``) or, for an app with one
group, a bare ``N``; machines are counted, copied and removed within their
group only, so a new worker copies a worker's config, never a web machine's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ferry.deploy.plan import live_machines, machine_group
from ferry.errors import ValidationError
from ferry.model import Machine, MachineState

#: Removal order: machines doing least for users go first.
_REMOVAL_RANK = {
    MachineState.FAILED: 0,
    MachineState.STOPPED: 1,
    MachineState.CREATED: 2,
    MachineState.STOPPING: 3,
}


_COUNT = re.compile(r"^(?:([a-z0-9_-]{1,63})=)?(\d{1,6})$")


@dataclass(frozen=True)
class ScalePlan:
    region: str
    current: int
    target: int
    template: Machine | None  # the machine whose config new ones copy
    destroy: tuple[Machine, ...]
    group: str | None = None  # None: every machine of the app, whatever its group

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


def parse_counts(words: Sequence[str]) -> dict[str | None, int]:
    """``["3"]`` → ``{None: 3}``; ``["web=2", "worker=1"]`` → ``{"web": 2, "worker": 1}``.

    Raises ``ValidationError`` for anything else (a bad word, a group named
    twice, a bare count mixed with group counts).
    """
    counts: dict[str | None, int] = {}
    for word in words:
        match = _COUNT.match(word.strip())
        if match is None:
            raise ValidationError(
                f"cannot read the count {word!r}",
                hint="give N for an app with one process group, or GROUP=N per group",
            )
        group, count = match.group(1), int(match.group(2))
        if group in counts:
            raise ValidationError(f"the count of {group or 'the app'} is given twice")
        counts[group] = count
    if not counts:
        raise ValidationError("no count given", hint="e.g. `ferry scale count 2` or web=2")
    if None in counts and len(counts) > 1:
        raise ValidationError(
            "give either one count N or GROUP=N counts, not both", hint="e.g. web=2 worker=1"
        )
    return counts


def app_groups(machines: Sequence[Machine]) -> list[str]:
    """The process groups the app's live machines run, sorted."""
    return sorted({machine_group(m) for m in live_machines(machines)})


def resolve_counts(
    counts: dict[str | None, int], machines: Sequence[Machine], known: Sequence[str] = ()
) -> dict[str, int]:
    """Counts per group: a bare ``N`` goes to the app's only group.

    ``known`` adds the groups of the local fly.toml to those the machines run.
    Raises ``ValidationError`` for a bare ``N`` when the app has several
    groups, or a group that neither the machines nor fly.toml know.
    """
    groups = sorted(set(app_groups(machines)) | set(known))
    if None in counts:
        if len(groups) > 1:
            raise ValidationError(
                f"the app has several process groups ({', '.join(groups)}); say how many of each",
                hint=f"e.g. `ferry scale count {groups[0]}={counts[None]}`",
            )
        return {groups[0] if groups else "app": counts[None]}
    resolved: dict[str, int] = {}
    for group, count in counts.items():
        assert group is not None
        if groups and group not in groups:
            raise ValidationError(
                f"unknown process group {group!r}; the app has {', '.join(groups)}",
                hint="use a group of [processes] in fly.toml",
            )
        resolved[group] = count
    return resolved


def plan_scale(
    machines: Sequence[Machine], region: str, target: int, group: str | None = None
) -> ScalePlan:
    """Reach ``target`` live machines of process ``group`` in ``region`` (None: any group).

    New machines copy the config of a live machine of the group in that
    region (else of the group anywhere). Extra machines are removed
    failed/stopped first, then the newest. Raises ``ValidationError`` for a
    negative target or when machines must be created but the group has none
    to copy ("deploy first").
    """
    if target < 0:
        raise ValidationError(
            f"cannot scale to {target} machines", hint="give a count of 0 or more"
        )
    live = [m for m in live_machines(machines) if group is None or machine_group(m) == group]
    here = [m for m in live if m.region == region]
    template = _newest(here) or _newest(live)
    if target > len(here) and template is None:
        whose = "the app has" if group is None else f"the process group {group!r} has"
        raise ValidationError(
            f"{whose} no machine to copy the configuration from",
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
        group=group,
    )


def _newest(machines: Sequence[Machine]) -> Machine | None:
    return max(machines, key=lambda m: (m.created_at, m.id), default=None)
