"""Machines, demand and a decide() wrapper for the autoscaler's unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ferry.autoscale import (
    AppDemand,
    MachineActivity,
    PolicyMemory,
    PolicyOutcome,
    RegionDemand,
    RegionDistances,
    decide,
)
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.model.autoscale import AutoscalePolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RTT = RegionDistances.from_pairs(
    {"ams-iad": 84, "ams-sin": 169, "iad-sin": 224, "sin-syd": 95, "ams-syd": 234, "iad-syd": 200}
)


def machine(
    machine_id: str,
    region: str = "ams",
    *,
    state: str = "started",
    autostop: str = "off",
    min_running: int = 0,
    soft_limit: int = 5,
    primary: str = "ams",
    age: float = 0.0,
) -> Machine:
    desired = DesiredState.STOPPED if state == "stopped" else DesiredState.STARTED
    config: dict[str, Any] = {
        "image": "registry.local/web@sha256:" + "0" * 64,
        "env": {"PRIMARY_REGION": primary},
        "services": [
            {
                "internal_port": 8080,
                "autostop": autostop,
                "min_machines_running": min_running,
                "concurrency": {"type": "requests", "soft_limit": soft_limit},
            }
        ],
    }
    created = T0 - timedelta(seconds=3600 - age)
    return Machine(
        id=machine_id,
        name=f"web-{machine_id}",
        app_name="web",
        state=MachineState(state),
        desired_state=desired,
        region=region,
        instance_id=f"i-{machine_id}",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip="10.1.0.2",
        config=MachineConfig.model_validate(config),
        host_id=f"{region}-1",
        created_at=created,
        updated_at=created,
    )


def demand(
    regions: dict[str, float] | None = None,
    machines: dict[str, tuple[int, int]] | None = None,
    edges: int = 1,
) -> AppDemand:
    """``regions``: client region -> concurrency; ``machines``: id -> (in flight, total)."""
    return AppDemand(
        regions={r: RegionDemand(rate=c, concurrency=c) for r, c in (regions or {}).items()},
        machines={m: MachineActivity(f, t) for m, (f, t) in (machines or {}).items()},
        edges=edges,
    )


class Run:
    """Calls decide() cycle after cycle, carrying the memory, with a clock it advances."""

    def __init__(self, policy: AutoscalePolicy, machines: list[Machine]) -> None:
        self.policy = policy
        self.machines = machines
        self.now = T0
        self.memory = PolicyMemory()

    def cycle(self, load: AppDemand, after: float = 0.0) -> PolicyOutcome:
        self.now += timedelta(seconds=after)
        outcome = decide(self.policy, self.machines, load, RTT, self.now, self.memory)
        self.memory = outcome.memory
        return outcome


def kinds(outcome: PolicyOutcome) -> list[tuple[str, str | None]]:
    """(kind, machine id or region) of each decision."""
    return [(d.kind, d.machine_id or d.region) for d in outcome.decisions]
