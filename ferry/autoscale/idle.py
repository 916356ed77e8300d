"""Fly's idle autostop, decided purely: which started machines to stop because nobody uses them.

A machine is idle when no edge has a request of it in flight and its request
count (summed over every edge) has not moved for ``stop_idle_after``. Only
machines whose services say ``auto_stop_machines = "stop"`` or ``"suspend"``
are acted on (``"suspend"`` freezes the machine with its memory kept instead
of stopping it), one region per cycle, never below the floor of their region:
``min_machines_running`` in the primary region and the policy's
``min_per_region`` (or the machines demand needs) in every region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from ferry.autoscale.decisions import Decision
from ferry.autoscale.demand import AppDemand
from ferry.model import Machine

__all__ = ["autostop_enabled", "autostop_kind", "idle_stops", "track_activity"]


def autostop_enabled(machine: Machine) -> bool:
    """Whether any service of the machine asks for idle machines to be stopped."""
    return any(service.autostop != "off" for service in machine.config.services)


def autostop_kind(machine: Machine) -> Literal["stop", "suspend"]:
    """``"suspend"`` when every service that autostops says ``suspend``, else ``"stop"``
    (a machine with one service asking for a stop is stopped, as the safer ask)."""
    modes = {s.autostop for s in machine.config.services if s.autostop != "off"}
    return "suspend" if modes == {"suspend"} else "stop"


def track_activity(
    running: Sequence[Machine],
    demand: AppDemand,
    now: datetime,
    active_at: Mapping[str, datetime],
    last_requests: Mapping[str, int],
) -> tuple[dict[str, datetime], dict[str, int]]:
    """When each running machine was last busy, and its request count seen now.

    A machine seen for the first time (new, or started again) counts as busy
    now, so a machine just woken is never stopped at once.
    """
    next_active: dict[str, datetime] = {}
    next_totals: dict[str, int] = {}
    for machine in running:
        load = demand.machines.get(machine.id)
        total = load.requests_total if load is not None else 0
        busy = (
            machine.id not in active_at
            or (load is not None and load.in_flight > 0)
            or total != last_requests.get(machine.id)
        )
        next_active[machine.id] = now if busy else active_at[machine.id]
        next_totals[machine.id] = total
    return next_active, next_totals


def idle_stops(
    running: Sequence[Machine],
    floors: Mapping[str, int],
    active_at: Mapping[str, datetime],
    now: datetime,
    stop_idle_after: float,
    *,
    skip_regions: frozenset[str] = frozenset(),
) -> list[Decision]:
    """Stop decisions for idle machines of the first region (alphabetical) that has any.

    ``floors`` is the number of machines each region must keep running;
    machines idle longest are stopped first. Regions in ``skip_regions``
    (already acted on this cycle) are left alone.
    """
    by_region: dict[str, list[Machine]] = {}
    for machine in running:
        by_region.setdefault(machine.region, []).append(machine)
    for region in sorted(by_region):
        if region in skip_regions:
            continue
        here = by_region[region]
        floor = floors.get(region, 0)
        idle = [
            m
            for m in here
            if autostop_enabled(m)
            and (now - active_at.get(m.id, now)).total_seconds() >= stop_idle_after
        ]
        room = len(here) - floor
        if not idle or room <= 0:
            continue
        idle.sort(key=lambda m: (active_at.get(m.id, now), m.id))
        decisions = []
        for machine in idle[:room]:
            quiet = (now - active_at.get(machine.id, now)).total_seconds()
            kind = autostop_kind(machine)
            decisions.append(
                Decision(
                    kind,
                    f"{region}: machine {machine.id} idle for {quiet:.0f}s "
                    f"(>= stop_idle_after {stop_idle_after:g}s), {len(here)} running, "
                    f"keeping at least {floor}: {kind}",
                    region=region,
                    machine_id=machine.id,
                    rule="idle-stop",
                )
            )
        return decisions
    return []
