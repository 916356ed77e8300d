"""The follow loop: level-triggered, around the pure ``decide_follow``.

Each cycle (``run_once``) reads the apps' follow policies through a ``FollowFleet``,
groups them by database, reads that database's members and follower volumes and the
apps' running regions fresh, decides, applies the actions and returns one line. It
keeps, per database, the decision memory (the windows' start times) and the last
reason and actions, which ``status(database)`` exposes for
``GET /v1/apps/{app}/postgres/status``. The memory is in-process: after a control
plane restart the windows start again (so nothing is added or removed early).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ferry.errors import FerryError
from ferry.model import Machine
from ferry.model.postgres_follow import FollowPolicy
from ferry.model.volume import Volume, VolumeState
from ferry.postgres import plan
from ferry.postgres.follow import (
    FOLLOWER,
    FollowAction,
    Follower,
    FollowMemory,
    Member,
    decide_follow,
    remember_failure,
)

__all__ = ["HISTORY", "FollowFleet", "FollowLoop"]

log = logging.getLogger("ferry.postgres.follow")

#: Actions kept per database for the status endpoint.
HISTORY = 20


class FollowFleet(Protocol):
    """What the loop reads and changes. Every method blocks; actions raise ``FerryError``."""

    def policies(self) -> dict[str, FollowPolicy]:
        """Every app's follow policy, by app name."""
        ...

    def running_regions(self, app: str) -> frozenset[str]:
        """The regions where ``app`` has a machine wanted started (and not failed)."""
        ...

    def members(self, database: str) -> list[Machine]:
        """The database's live member machines; ``NotFoundError`` when no such app."""
        ...

    def follower_volumes(self, database: str) -> list[Volume]:
        """The database's follower volumes (``follow.FOLLOWER_VOLUME``) not destroyed."""
        ...

    def add_replica(
        self, database: str, template: Machine, region: str, app: str, reason: str
    ) -> Machine:
        """A volume and a started follower machine in ``region``, like ``template``."""
        ...

    def remove_replica(self, database: str, machine_id: str, reason: str) -> None:
        """Destroy the follower machine (its volume is dropped once it is gone)."""
        ...

    def drop_volume(self, database: str, volume_id: str, reason: str) -> None:
        """Destroy a follower volume no machine holds."""
        ...


@dataclass
class _State:
    memory: FollowMemory = field(default_factory=FollowMemory)
    reason: str = ""
    checked_at: datetime | None = None
    history: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY))


def _template(machines: list[Machine]) -> Machine | None:
    """The oldest member ``ferry postgres create`` made (a follower is never copied)."""
    made = [m for m in machines if m.config.metadata.get(plan.MEMBER_METADATA) != FOLLOWER]
    return min(made, key=lambda m: (m.created_at, m.id)) if made else None


class FollowLoop:
    """Runs ``decide_follow`` for every followed database. ``run_once`` blocks (fleet I/O)."""

    def __init__(self, fleet: FollowFleet, now: Callable[[], datetime]) -> None:
        self._fleet = fleet
        self._now = now
        self._databases: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._last_line = ""

    def run_once(self) -> str:
        """One cycle over every followed database; one line naming what was done."""
        by_database: dict[str, list[tuple[str, FollowPolicy]]] = {}
        for app, policy in self._fleet.policies().items():
            by_database.setdefault(policy.database, []).append((app, policy))
        lines = [self._cycle(db, apps) for db, apps in sorted(by_database.items())]
        with self._lock:
            for gone in set(self._databases) - set(by_database):
                del self._databases[gone]
        return "; ".join(lines) or "no app has a [postgres] section"

    def _cycle(self, database: str, apps: list[tuple[str, FollowPolicy]]) -> str:
        now = self._now()
        with self._lock:
            state = self._databases.setdefault(database, _State())
        try:
            machines = self._fleet.members(database)
            volumes = self._fleet.follower_volumes(database)
            followers = [
                Follower(app, policy, self._fleet.running_regions(app)) for app, policy in apps
            ]
        except FerryError as exc:
            line = f"{database}: cannot follow: {exc.message}"
            with self._lock:
                state.reason, state.checked_at = line, now
            return line
        members = [
            Member(m.id, m.region, m.config.metadata.get(plan.MEMBER_METADATA) == FOLLOWER)
            for m in machines
        ]
        orphans = [
            (v.id, v.region)
            for v in volumes
            if v.attached_machine_id is None and v.state is not VolumeState.PENDING_DESTROY
        ]
        outcome = decide_follow(database, followers, members, orphans, now, state.memory)
        memory = outcome.memory
        results = []
        for action in outcome.actions:
            result = self._apply(database, action, machines, followers)
            if action.kind == "add" and result.startswith("failed"):
                memory = remember_failure(memory, action.region, now)
            results.append(f"{action.kind} {action.region}: {result}")
            log.info("follow %s: %s %s (%s)", database, action.kind, action.reason, result)
            entry: dict[str, Any] = {"at": now.isoformat(), "kind": action.kind}
            entry |= {"region": action.region, "machine_id": action.machine_id}
            entry |= {"reason": action.reason, "result": result}
            with self._lock:
                state.history.append(entry)
        line = f"{database}: {', '.join(results)}" if results else outcome.reason
        with self._lock:
            state.memory, state.reason, state.checked_at = memory, line, now
        return line

    def _apply(
        self,
        database: str,
        action: FollowAction,
        machines: list[Machine],
        followers: list[Follower],
    ) -> str:
        fleet = self._fleet
        try:
            if action.kind == "add":
                template = _template(machines)
                if template is None:
                    return "failed: the database has no member made by `ferry postgres create`"
                app = next(
                    f.app for f in followers if f.policy.follows and action.region in f.regions
                )
                made = fleet.add_replica(database, template, action.region, app, action.reason)
                return f"created {made.id}"
            if action.kind == "remove":
                assert action.machine_id is not None
                fleet.remove_replica(database, action.machine_id, action.reason)
                return f"destroying {action.machine_id}"
            assert action.volume_id is not None
            fleet.drop_volume(database, action.volume_id, action.reason)
            return f"destroying volume {action.volume_id}"
        except FerryError as exc:
            return f"failed: {exc.message}"

    def status(self, database: str) -> dict[str, Any]:
        """What the last cycle saw and did for ``database`` (JSON-ready). Never blocks on I/O."""
        with self._lock:
            state = self._databases.get(database)
            if state is None:
                return {"checked_at": None, "last_reason": "", "actions": []}
            return {
                "checked_at": state.checked_at.isoformat() if state.checked_at else None,
                "last_reason": state.reason,
                "app_running_since": {
                    r: t.isoformat() for r, t in sorted(state.memory.present_since.items())
                },
                "app_gone_since": {
                    r: t.isoformat() for r, t in sorted(state.memory.absent_since.items())
                },
                "actions": list(reversed(state.history)),
            }

    async def run_forever(self, interval: float = 1.0) -> None:
        """Run cycles until cancelled; a failing cycle is logged and the loop goes on."""
        while True:
            try:
                line = await asyncio.to_thread(self.run_once)
                level = logging.INFO if line != self._last_line else logging.DEBUG
                log.log(level, "follow: %s", line)
                self._last_line = line
            except Exception:
                log.exception("follow cycle failed; retrying in %.1fs", interval)
            await asyncio.sleep(interval)
