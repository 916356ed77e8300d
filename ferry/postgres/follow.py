"""Replicas that follow the app: what to add and remove, as a pure function (no I/O).

``decide_follow`` looks at one Postgres cluster and the apps whose ``[postgres]``
section says ``replicas = "follow"`` for it, at an explicit ``now`` and with the
memory of the previous cycle (since when each region has had the apps, or has been
without them). It answers with actions and a one-line reason:

- ``add`` a replica in a region where an app has had a running machine for
  ``scale_out_after`` seconds and the cluster has no member;
- ``remove`` a replica *this feature made* (a "follower") in a region the apps
  left ``scale_in_after`` seconds ago, unless that would leave fewer than
  ``min_replicas`` replicas. Members made by ``ferry postgres create`` are never
  removed, and a follower is never the primary (it runs with Patroni's
  ``nofailover`` tag), so the primary's region is never emptied;
- ``drop_volume`` of a follower's volume whose machine is gone (the second half of a
  removal, or what a failed add left behind).

``follower_config`` is the machine config of a new follower, made from a member's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from ferry.model import MachineConfig
from ferry.model.postgres_follow import FollowPolicy
from ferry.model.volume import MachineMount
from ferry.postgres import plan

__all__ = [
    "FOLLOWER",
    "FOLLOWER_VOLUME",
    "RETRY_AFTER",
    "FollowAction",
    "FollowMemory",
    "FollowOutcome",
    "Follower",
    "Member",
    "decide_follow",
    "follower_config",
    "remember_failure",
]

#: ``config.metadata[plan.MEMBER_METADATA]`` of a member this feature made.
FOLLOWER = "follower"
#: The name of a follower's volume: only volumes of this name are ever destroyed here.
FOLLOWER_VOLUME = "pg_follow"
#: Seconds before an add that failed (no room, a host down) is tried again.
RETRY_AFTER = 30.0
#: The env a follower must not take from the member it is copied from: it runs no etcd
#: member (it uses the existing ones) and joins a cluster that already has a leader.
_NOT_INHERITED = ("ETCD_LOCAL", "ETCD_INITIAL_CLUSTER", "PG_BOOTSTRAP_LEADER")


@dataclass(frozen=True)
class Member:
    """A live member machine of the cluster."""

    machine_id: str
    region: str
    follower: bool


@dataclass(frozen=True)
class Follower:
    """An app following the cluster: its policy and the regions it runs in now."""

    app: str
    policy: FollowPolicy
    regions: frozenset[str]


@dataclass(frozen=True)
class FollowMemory:
    """What a cycle passes to the next: since when each region has had a following app
    running (``present_since``), since when a follower's region has had none
    (``absent_since``), and when an add last failed per region (``failed_at``)."""

    present_since: Mapping[str, datetime] = field(default_factory=dict)
    absent_since: Mapping[str, datetime] = field(default_factory=dict)
    failed_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowAction:
    kind: Literal["add", "remove", "drop_volume"]
    region: str
    reason: str
    machine_id: str | None = None
    volume_id: str | None = None


@dataclass(frozen=True)
class FollowOutcome:
    actions: tuple[FollowAction, ...]
    memory: FollowMemory
    reason: str  # one line: what was done, or why nothing


def _seconds(since: datetime, now: datetime) -> float:
    return max(0.0, (now - since).total_seconds())


def decide_follow(
    database: str,
    followers: Sequence[Follower],
    members: Sequence[Member],
    orphan_volumes: Sequence[tuple[str, str]],
    now: datetime,
    memory: FollowMemory,
) -> FollowOutcome:
    """The actions for ``database`` this cycle (see the module). Pure.

    ``followers`` are the apps with a follow policy for it (several apps may follow one
    database: the union of their regions is followed, the shortest ``scale_out_after``,
    the longest ``scale_in_after`` and the highest ``min_replicas`` apply);
    ``orphan_volumes`` are ``(volume id, region)`` of follower volumes no machine
    holds. At most one member per region; never more than ``plan.MAX_MEMBERS``.
    """
    active = [f for f in followers if f.policy.follows]
    actions = [
        FollowAction("drop_volume", region, "its replica is gone", volume_id=volume_id)
        for volume_id, region in orphan_volumes
    ]
    if not active or not members:
        why = "no app follows it" if not active else "it has no members"
        return FollowOutcome(tuple(actions), FollowMemory(), _line(database, actions, why))
    wanted = frozenset().union(*(f.regions for f in active))
    scale_out = min(f.policy.scale_out_after for f in active)
    scale_in = max(f.policy.scale_in_after for f in active)
    minimum = max(f.policy.min_replicas for f in active)
    held = {m.region for m in members}
    present = {r: memory.present_since.get(r, now) for r in wanted}
    absent = {
        m.region: memory.absent_since.get(m.region, now)
        for m in members
        if m.follower and m.region not in wanted
    }
    failed = {r: at for r, at in memory.failed_at.items() if _seconds(at, now) < RETRY_AFTER}
    waiting: list[str] = []
    size = len(members)
    for region in sorted(wanted - held):
        ran = _seconds(present[region], now)
        if region in failed:
            waiting.append(f"{region}: retrying a failed add in {RETRY_AFTER:.0f} s")
        elif ran < scale_out:
            waiting.append(f"{region}: app running {ran:.0f}/{scale_out:.0f} s")
        elif size >= plan.MAX_MEMBERS:
            waiting.append(f"{region}: the cluster has {plan.MAX_MEMBERS} members already")
        else:
            size += 1
            actions.append(
                FollowAction(
                    "add",
                    region,
                    f"the app has run in {region} for {ran:.0f} s (>= {scale_out:.0f} s)",
                )
            )
    replicas = len(members) - 1  # one member is the primary
    removable = sorted(
        (m for m in members if m.region in absent), key=lambda m: (absent[m.region], m.region)
    )
    for member in removable:
        gone = _seconds(absent[member.region], now)
        if gone < scale_in:
            waiting.append(f"{member.region}: app gone {gone:.0f}/{scale_in:.0f} s")
        elif replicas - 1 < minimum:
            waiting.append(f"{member.region}: kept, min_replicas is {minimum}")
        else:
            replicas -= 1
            actions.append(
                FollowAction(
                    "remove",
                    member.region,
                    f"the app left {member.region} {gone:.0f} s ago (>= {scale_in:.0f} s)",
                    machine_id=member.machine_id,
                )
            )
    kept = FollowMemory(present_since=present, absent_since=absent, failed_at=failed)
    idle = "; ".join(waiting) or f"members in {', '.join(sorted(held))} match the app"
    return FollowOutcome(tuple(actions), kept, _line(database, actions, idle))


def _line(database: str, actions: Sequence[FollowAction], idle: str) -> str:
    if not actions:
        return f"{database}: nothing to do ({idle})"
    done = ", ".join(f"{a.kind} {a.machine_id or a.volume_id or a.region}" for a in actions)
    return f"{database}: {done}"


def remember_failure(memory: FollowMemory, region: str, now: datetime) -> FollowMemory:
    """``memory`` with an add in ``region`` failed at ``now`` (retried after ``RETRY_AFTER``)."""
    return replace(memory, failed_at={**memory.failed_at, region: now})


def follower_config(template: MachineConfig, volume_id: str, app: str) -> MachineConfig:
    """A follower's config: ``template`` (a member's) with its own volume on ``/data``, no
    etcd member of its own (it uses the cluster's, whose ``ETCD_ENDPOINTS`` it keeps),
    Patroni's ``nofailover``/``nosync`` tags (``PG_FOLLOWER=1``: it never becomes the
    primary nor the synchronous replica, so removing it never costs a write), and
    metadata naming it a follower of ``app``. Pure."""
    env = {k: v for k, v in template.env.items() if k not in _NOT_INHERITED}
    env["PG_FOLLOWER"] = "1"
    metadata = {**template.metadata, plan.MEMBER_METADATA: FOLLOWER, "ferry-follows": app}
    mount = MachineMount(volume=volume_id, path=plan.DATA_PATH, name=FOLLOWER_VOLUME)
    return template.model_copy(update={"env": env, "metadata": metadata, "mounts": [mount]})
