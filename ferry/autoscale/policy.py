"""The autoscaler's decision: a pure function of one snapshot, an explicit ``now`` and memory.

``decide(policy, machines, demand, distances, now, memory)`` applies, in order:

1. **Scale-out / scale-in** (when the policy is enabled). Demand from each
   client region is served by that region if the policy allows it, else by
   the nearest allowed region. Each allowed region wants
   ``ceil(concurrency / target_concurrency)`` machines (at least one while its
   clients send requests: in-flight counts are samples), clamped to
   ``[min_per_region, max_per_region]``, and all regions together at most
   ``max_total``. A shortfall held for ``scale_out_after`` starts stopped
   machines of the region first, then creates; an excess held for
   ``scale_in_after`` stops the least-loaded machine (one per region per
   cycle), never the app's last running one.
2. **Destroy**: a machine the autoscaler stopped is destroyed after
   ``destroy_after``, never leaving a region with fewer than
   ``min_per_region`` machines, nor the app with none.
3. **Idle autostop** (Fly's ``auto_stop_machines``), see ``ferry.autoscale.idle``.

Every decision carries a one-line reason naming the numbers. No I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from ferry.autoscale.decisions import (
    Decision,
    PolicyMemory,
    PolicyOutcome,
    RegionView,
    is_running,
    is_stopped,
)
from ferry.autoscale.demand import AppDemand, RegionDemand
from ferry.autoscale.distances import RegionDistances
from ferry.autoscale.idle import idle_stops, track_activity
from ferry.model import Machine
from ferry.model.autoscale import AutoscalePolicy

__all__ = ["allocate", "decide", "remember_placement", "serving_regions"]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def serving_regions(
    demand: Mapping[str, RegionDemand], allowed: Sequence[str], distances: RegionDistances
) -> dict[str, dict[str, RegionDemand]]:
    """Allowed region -> {client region -> its demand}: each client region to itself or the
    nearest allowed region."""
    served: dict[str, dict[str, RegionDemand]] = {region: {} for region in allowed}
    for client, figures in sorted(demand.items()):
        server = client if client in served else distances.nearest(client, allowed)
        if server is not None:
            served[server][client] = figures
    return served


def allocate(
    wanted: Mapping[str, int], policy: AutoscalePolicy, load: Mapping[str, float]
) -> dict[str, int]:
    """Clamp each region's wanted count to [min, max], then cap the sum at ``max_total``.

    Every region keeps its minimum; the rest of ``max_total`` goes to the
    regions with the most load first.
    """
    clamped = {
        r: min(max(n, policy.min_per_region), policy.max_per_region) for r, n in wanted.items()
    }
    result = {r: min(policy.min_per_region, n) for r, n in clamped.items()}
    budget = policy.max_total - sum(result.values())
    for region in sorted(clamped, key=lambda r: (-load.get(r, 0.0), r)):
        extra = max(0, min(clamped[region] - result[region], budget))
        result[region] += extra
        budget -= extra
    return result


def _soft_limit(machines: Sequence[Machine]) -> int | None:
    for machine in reversed(machines):
        for service in machine.config.services:
            if service.concurrency is not None:
                return service.concurrency.soft_limit
    return None


def _fly_floor(machines: Sequence[Machine]) -> tuple[str | None, int]:
    """(primary region, min_machines_running) from the newest machine's config."""
    if not machines:
        return None, 0
    newest = max(machines, key=lambda m: (m.created_at, m.id))
    minimum = max((s.min_machines_running for s in newest.config.services), default=0)
    return newest.config.env.get("PRIMARY_REGION") or None, minimum


def _counted_region(machine: Machine, placed_for: Mapping[str, str]) -> str:
    return placed_for.get(machine.id, machine.region)


def _least_loaded(machines: Sequence[Machine], demand: AppDemand) -> Machine:
    def load(machine: Machine) -> tuple[int, float, str]:
        activity = demand.machines.get(machine.id)
        in_flight = activity.in_flight if activity else 0
        return (in_flight, -machine.created_at.timestamp(), machine.id)

    return min(machines, key=load)


def decide(
    policy: AutoscalePolicy,
    machines: Sequence[Machine],
    demand: AppDemand,
    distances: RegionDistances,
    now: datetime,
    memory: PolicyMemory,
) -> PolicyOutcome:
    """Decide this cycle's actions for one app. Pure; see the module docstring for the rules.

    ``machines`` are the app's machines (any state, oldest first). Returns the
    decisions (a single ``none`` with the reason when there is nothing to do),
    the memory for the next cycle and the per-region view the decision used.
    """
    running = [m for m in machines if is_running(m)]
    stopped = [m for m in machines if is_stopped(m)]
    live_ids = {m.id for m in running} | {m.id for m in stopped}
    placed_for = {mid: r for mid, r in memory.placed_for.items() if mid in live_ids}
    active_at, totals = track_activity(running, demand, now, memory.active_at, memory.last_requests)
    scaled_in = {
        mid: at for mid, at in memory.scaled_in_at.items() if mid in {m.id for m in stopped}
    }
    target = policy.target_for(_soft_limit(machines))
    primary, fly_minimum = _fly_floor([*running, *stopped])
    allowed = sorted(policy.regions) or sorted({m.region for m in [*running, *stopped]})

    decisions: list[Decision] = []
    shortfall_since: dict[str, datetime] = {}
    excess_since: dict[str, datetime] = {}
    desired: dict[str, int] = {}
    served = serving_regions(demand.regions, allowed, distances)
    load = {r: sum(d.concurrency for d in clients.values()) for r, clients in served.items()}
    if policy.enabled and allowed:
        rate = {r: sum(d.rate for d in clients.values()) for r, clients in served.items()}
        # In-flight counts are sampled at report time: light but steady traffic often
        # samples 0. A region that is sending requests keeps at least one machine, or
        # scale-in and wake-on-request would take turns stopping and starting it.
        wanted = {
            r: max(math.ceil(load[r] / target), 1 if rate.get(r, 0.0) > 0 else 0) for r in allowed
        }
        desired = allocate(wanted, policy, load)
        total_running = len(running)
        for region in allowed:
            here = [m for m in running if _counted_region(m, placed_for) == region]
            asleep = [m for m in stopped if m.region == region]
            why = _load_text(region, served[region], target)
            if desired[region] > len(here):
                since = memory.shortfall_since.get(region, now)
                shortfall_since[region] = since
                held = (now - since).total_seconds()
                if held < policy.scale_out_after:
                    continue
                room = max(0, policy.max_total - total_running)
                need = min(desired[region] - len(here), room)
                head = (
                    f"{why} needs {_plural(desired[region], 'machine')}, {len(here)} running, "
                    f"for {held:.0f}s (>= scale_out_after {policy.scale_out_after:g}s)"
                )
                asleep.sort(key=lambda m: (-m.updated_at.timestamp(), m.id))
                for machine in asleep[:need]:
                    decisions.append(
                        Decision(
                            "start", f"{head}: start {machine.id}", region, machine.id, "scale-out"
                        )
                    )
                for _ in range(need - min(need, len(asleep))):
                    decisions.append(
                        Decision("create", f"{head}: create", region, None, "scale-out")
                    )
                total_running += need
            elif desired[region] < len(here):
                since = memory.excess_since.get(region, now)
                excess_since[region] = since
                held = (now - since).total_seconds()
                floor = max(desired[region], fly_minimum if region == primary else 0)
                if held < policy.scale_in_after or len(here) <= floor or total_running <= 1:
                    continue
                victim = _least_loaded(here, demand)
                decisions.append(
                    Decision(
                        "stop",
                        f"{why} needs {_plural(desired[region], 'machine')}, {len(here)} running, "
                        f"for {held:.0f}s (>= scale_in_after {policy.scale_in_after:g}s): "
                        f"stop least-loaded {victim.id}",
                        region,
                        victim.id,
                        "scale-in",
                    )
                )
                scaled_in[victim.id] = now
                total_running -= 1
        decisions += _destroys(policy, running, stopped, scaled_in, now)

    acted = frozenset(d.region for d in decisions if d.region is not None)
    floors = {
        region: max(
            policy.min_per_region if region in allowed else 0,
            desired.get(region, 0),
            fly_minimum if region == primary else 0,
        )
        for region in {m.region for m in running}
    }
    stopping = {d.machine_id for d in decisions if d.kind == "stop"}
    if demand.edges:
        decisions += idle_stops(
            [m for m in running if m.id not in stopping],
            floors,
            active_at,
            now,
            policy.stop_idle_after,
            skip_regions=acted,
        )
    if not decisions:
        decisions = [Decision("none", _quiet_reason(policy, running, demand, desired, allowed))]
    # A machine stopped or suspended now is forgotten: if a request wakes it before the
    # next cycle sees it stopped, it counts as just started (busy), not idle for long.
    put_to_sleep = {d.machine_id for d in decisions if d.kind in ("stop", "suspend")}
    memory = PolicyMemory(
        shortfall_since=shortfall_since,
        excess_since=excess_since,
        active_at={mid: at for mid, at in active_at.items() if mid not in put_to_sleep},
        last_requests=totals,
        scaled_in_at={mid: at for mid, at in scaled_in.items()},
        placed_for=placed_for,
    )
    regions = _views(running, stopped, served, desired, placed_for, demand)
    return PolicyOutcome(decisions, memory, regions, target)


def _load_text(region: str, clients: Mapping[str, RegionDemand], target: int) -> str:
    total = sum(d.concurrency for d in clients.values())
    others = [f"{c.concurrency:.1f} from {name}" for name, c in clients.items() if name != region]
    via = f" (incl. {', '.join(others)})" if others else ""
    return f"{region}: concurrency {total:.1f}{via} / target {target}"


def _destroys(
    policy: AutoscalePolicy,
    running: Sequence[Machine],
    stopped: Sequence[Machine],
    scaled_in: Mapping[str, datetime],
    now: datetime,
) -> list[Decision]:
    existing: dict[str, int] = {}
    for machine in [*running, *stopped]:
        existing[machine.region] = existing.get(machine.region, 0) + 1
    app_total = len(running) + len(stopped)
    decisions = []
    for machine in sorted(stopped, key=lambda m: (scaled_in.get(m.id, now), m.id)):
        at = scaled_in.get(machine.id)
        if at is None:
            continue
        held = (now - at).total_seconds()
        if held < policy.destroy_after:
            continue
        if existing[machine.region] <= policy.min_per_region or app_total <= 1:
            continue
        existing[machine.region] -= 1
        app_total -= 1
        decisions.append(
            Decision(
                "destroy",
                f"{machine.region}: machine {machine.id} stopped by scale-in {held:.0f}s ago "
                f"(>= destroy_after {policy.destroy_after:g}s), "
                f"{existing[machine.region]} left in region (min {policy.min_per_region}): destroy",
                machine.region,
                machine.id,
                "destroy",
            )
        )
    return decisions


def _quiet_reason(
    policy: AutoscalePolicy,
    running: Sequence[Machine],
    demand: AppDemand,
    desired: Mapping[str, int],
    allowed: Sequence[str],
) -> str:
    if not running and not allowed:
        return "no machines"
    if not policy.enabled:
        head = f"autoscale off; {_plural(len(running), 'machine')} running"
    else:
        wants = ", ".join(f"{r} {desired.get(r, 0)}" for r in allowed)
        head = f"{_plural(len(running), 'machine')} running; desired {wants}"
    if not demand.edges:
        return f"{head}; no edge reports"
    return f"{head}; nothing to do"


def _views(
    running: Sequence[Machine],
    stopped: Sequence[Machine],
    served: Mapping[str, Mapping[str, RegionDemand]],
    desired: Mapping[str, int],
    placed_for: Mapping[str, str],
    demand: AppDemand,
) -> dict[str, RegionView]:
    names = sorted({m.region for m in [*running, *stopped]} | set(served) | set(demand.regions))
    views = {}
    for region in names:
        clients = served.get(region, {})
        own = demand.regions.get(region, RegionDemand())
        attributed = RegionDemand(
            rate=sum(d.rate for d in clients.values()) if clients else own.rate,
            concurrency=sum(d.concurrency for d in clients.values())
            if clients
            else own.concurrency,
            unserved_rate=(
                sum(d.unserved_rate for d in clients.values()) if clients else own.unserved_rate
            ),
        )
        views[region] = RegionView(
            region=region,
            started=sum(1 for m in running if _counted_region(m, placed_for) == region),
            stopped=sum(1 for m in stopped if m.region == region),
            demand=attributed,
            desired=desired.get(region),
        )
    return views


def remember_placement(memory: PolicyMemory, machine_id: str, wanted_region: str) -> PolicyMemory:
    """``memory`` with a machine created elsewhere counted for ``wanted_region``."""
    return replace(memory, placed_for={**memory.placed_for, machine_id: wanted_region})
