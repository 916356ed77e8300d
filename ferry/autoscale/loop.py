"""The autoscaler's control loop: level-triggered, around the pure ``decide``.

Each cycle (``run_once``) reads a fresh snapshot through a ``Fleet`` — the
apps, their policies and machines, the edges' latest reports — measures each
app's demand, decides, applies the decisions through the fleet and returns a
one-line reason. The loop keeps, per app, the decision memory, the previous
edge counter samples and a ring buffer of the last decisions, which
``status(app)`` exposes for ``GET /v1/apps/{app}/autoscale/status``.
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

from ferry.autoscale.decisions import Decision, PolicyMemory, PolicyOutcome, is_running
from ferry.autoscale.demand import CounterSample, EdgeSample, measure_demand
from ferry.autoscale.distances import RegionDistances
from ferry.autoscale.policy import decide, remember_placement
from ferry.errors import FerryError
from ferry.model import Machine, MachineState
from ferry.model.autoscale import AutoscalePolicy

__all__ = ["HISTORY", "AutoscaleLoop", "DecisionRecord", "Fleet"]

log = logging.getLogger("ferry.autoscale")

#: Decisions kept per app for the status endpoint.
HISTORY = 50
#: The policy of an app without ``[autoscale]``: only Fly's idle autostop acts.
IDLE_ONLY = AutoscalePolicy(enabled=False)


class Fleet(Protocol):
    """What the loop reads and changes. Every method blocks; actions raise ``FerryError``.

    The actions record the decision's ``reason`` as a machine event
    (source ``ferry``, type ``autoscale``).
    """

    def app_names(self) -> list[str]: ...

    def policy(self, app: str) -> AutoscalePolicy | None: ...

    def machines(self, app: str) -> list[Machine]: ...

    def edge_samples(self) -> list[EdgeSample]: ...

    def create(
        self, app: str, template: Machine, region: str, reason: str
    ) -> tuple[Machine, str | None]:
        """Create a machine like ``template`` in ``region`` (or the nearest region with room);
        returns it and the placement note when it landed elsewhere."""
        ...

    def start(self, app: str, machine_id: str, reason: str) -> None: ...

    def stop(self, app: str, machine_id: str, reason: str) -> None: ...

    def destroy(self, app: str, machine_id: str, reason: str) -> None: ...


@dataclass(frozen=True)
class DecisionRecord:
    """One applied (or failed) decision, as ``ferry autoscale status`` lists it."""

    at: datetime
    kind: str
    rule: str
    region: str | None
    machine_id: str | None
    reason: str
    result: str  # "done", "failed: <sentence>" or the placement note

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "rule": self.rule,
            "region": self.region,
            "machine_id": self.machine_id,
            "reason": self.reason,
            "result": self.result,
        }


@dataclass
class _AppState:
    memory: PolicyMemory = field(default_factory=PolicyMemory)
    samples: dict[str, CounterSample] = field(default_factory=dict)
    history: deque[DecisionRecord] = field(default_factory=lambda: deque(maxlen=HISTORY))
    outcome: PolicyOutcome | None = None
    last_reason: str = ""
    checked_at: datetime | None = None


def _template(machines: list[Machine]) -> Machine | None:
    """The newest started machine, else the newest running one, else the newest at all."""
    for pool in (
        [m for m in machines if m.state is MachineState.STARTED],
        [m for m in machines if is_running(m)],
        list(machines),
    ):
        if pool:
            return max(pool, key=lambda m: (m.created_at, m.id))
    return None


class AutoscaleLoop:
    """Runs ``decide`` for every app against a ``Fleet``. ``run_once`` blocks (fleet I/O)."""

    def __init__(
        self,
        fleet: Fleet,
        now: Callable[[], datetime],
        distances: RegionDistances | None = None,
    ) -> None:
        self._fleet = fleet
        self._now = now
        self.distances = distances or RegionDistances()
        self._apps: dict[str, _AppState] = {}
        self._lock = threading.Lock()
        self._last_reason = ""

    def run_once(self) -> str:
        """One cycle over every app; returns one line naming the actions taken (or why none)."""
        edges = self._fleet.edge_samples()
        names = self._fleet.app_names()
        acted: list[str] = []
        for app in names:
            line = self._cycle(app, edges)
            if line:
                acted.append(line)
        with self._lock:
            for gone in set(self._apps) - set(names):
                del self._apps[gone]
        if acted:
            return "; ".join(acted)
        return f"{len(names)} app{'s' if len(names) != 1 else ''}: nothing to do"

    def _cycle(self, app: str, edges: list[EdgeSample]) -> str:
        now = self._now()
        policy = self._fleet.policy(app) or IDLE_ONLY
        # Only machines the edge routes to: a process group without services (a worker)
        # has no demand to follow, and must never be cloned or stopped for traffic. An app
        # with no services at all keeps every machine (its [autoscale] floors still apply).
        everything = self._fleet.machines(app)
        machines = [m for m in everything if m.config.services] or everything
        with self._lock:
            state = self._apps.setdefault(app, _AppState())
        demand, samples = measure_demand(app, edges, state.samples)
        outcome = decide(policy, machines, demand, self.distances, now, state.memory)
        memory = outcome.memory
        records: list[DecisionRecord] = []
        for decision in outcome.decisions:
            if decision.kind == "none":
                continue
            result, placed = self._apply(app, decision, machines)
            if placed is not None:
                memory = remember_placement(memory, placed, decision.region or "")
            records.append(
                DecisionRecord(
                    now,
                    decision.kind,
                    decision.rule,
                    decision.region,
                    decision.machine_id,
                    decision.reason,
                    result,
                )
            )
            log.info("autoscale %s: %s (%s)", app, decision.reason, result)
        with self._lock:
            state.memory = memory
            state.samples = samples
            state.outcome = outcome
            state.checked_at = now
            state.history.extend(records)
            state.last_reason = (
                outcome.decisions[0].reason if not records else f"{len(records)} actions"
            )
        return ", ".join(
            f"{app}: {r.kind} {r.machine_id or r.region} ({r.result})" for r in records
        )

    def _apply(
        self, app: str, decision: Decision, machines: list[Machine]
    ) -> tuple[str, str | None]:
        """Carry out one decision; (result text, id of a machine placed in another region)."""
        fleet = self._fleet
        try:
            if decision.kind == "create":
                template = _template(machines)
                if template is None or decision.region is None:
                    return "failed: the app has no machine to copy the configuration from", None
                created, note = fleet.create(app, template, decision.region, decision.reason)
                if note:
                    return f"created {created.id}; {note}", created.id
                return f"created {created.id}", None
            assert decision.machine_id is not None
            action = {"start": fleet.start, "stop": fleet.stop, "destroy": fleet.destroy}
            action[decision.kind](app, decision.machine_id, decision.reason)
        except FerryError as exc:
            return f"failed: {exc}", None
        return "done", None

    def status(self, app: str) -> dict[str, Any]:
        """What the last cycle saw and did for ``app`` (JSON-ready). Never blocks on I/O."""
        with self._lock:
            state = self._apps.get(app)
            if state is None:
                return {"checked_at": None, "last_reason": "", "regions": {}, "decisions": []}
            outcome = state.outcome
            regions = {}
            if outcome is not None:
                for name, view in outcome.regions.items():
                    regions[name] = {
                        "started": view.started,
                        "stopped": view.stopped,
                        "desired": view.desired,
                        "rate": round(view.demand.rate, 3),
                        "concurrency": round(view.demand.concurrency, 3),
                        "unserved_rate": round(view.demand.unserved_rate, 3),
                    }
            return {
                "checked_at": state.checked_at.isoformat() if state.checked_at else None,
                "last_reason": state.last_reason,
                "target_concurrency": outcome.target_concurrency if outcome else None,
                "placement_basis": self.distances.basis,
                "regions": regions,
                "decisions": [r.as_json() for r in reversed(state.history)],
            }

    async def run_forever(self, interval: float = 1.0) -> None:
        """Run cycles until cancelled; a failing cycle is logged and the loop goes on."""
        while True:
            try:
                reason = await asyncio.to_thread(self.run_once)
                level = logging.INFO if reason != self._last_reason else logging.DEBUG
                log.log(level, "autoscale: %s", reason)
                self._last_reason = reason
            except Exception:
                log.exception("autoscale cycle failed; retrying in %.1fs", interval)
            await asyncio.sleep(interval)
