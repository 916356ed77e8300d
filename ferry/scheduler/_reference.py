"""``place_machine``: placement of one machine by reading the whole snapshot.

This is the rule written as plainly as possible; ``Scheduler`` must agree
with it on every input, and the tests hold it to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ferry.errors import ValidationError
from ferry.scheduler import _reasons
from ferry.scheduler._types import HostCapacity, NoPlacement, Placement, PlacementRequest

__all__ = ["place_machine", "require_unique_ids"]


def place_machine(
    request: PlacementRequest, hosts: Sequence[HostCapacity]
) -> Placement | NoPlacement:
    """Choose the host for one machine, or say why none can take it.

    Candidates are the up hosts of ``request.region`` with at least
    ``request.cpus`` free cpus and ``request.memory_mb`` free memory. Among
    them the host wins that has the fewest machines of ``request.app``
    (spread), then the most free memory (stay away from packed hosts), then
    the lowest ``host_id`` (determinism).

    Pure: reads its arguments only, changes nothing, same answer every time.
    Costs one pass over ``hosts``. Raises ``ValidationError`` when two hosts
    share an id.
    """
    require_unique_ids(host.host_id for host in hosts)
    region = request.region
    in_region = [host for host in hosts if host.region == region]
    if not in_region:
        return NoPlacement(region, _reasons.no_hosts(region))
    up = [host for host in in_region if host.up]
    down = len(in_region) - len(up)
    if not up:
        return NoPlacement(region, _reasons.no_host_up(region, down))
    fitting = [
        host
        for host in up
        if host.free_cpus >= request.cpus and host.free_memory_mb >= request.memory_mb
    ]
    if not fitting:
        largest = _reasons.largest_free(
            (host.host_id, host.free_cpus, host.free_memory_mb) for host in up
        )
        reason = _reasons.no_room(region, request.cpus, request.memory_mb, largest, len(up), down)
        return NoPlacement(region, reason)
    app = request.app
    best = min(
        fitting,
        key=lambda host: (host.app_machines.get(app, 0), -host.free_memory_mb, host.host_id),
    )
    in_region_total = sum(host.app_machines.get(app, 0) for host in in_region)
    reason = _reasons.placed(
        best.host_id,
        app,
        region,
        best.app_machines.get(app, 0),
        in_region_total,
        best.free_memory_mb,
        best.memory_mb,
    )
    return Placement(best.host_id, region, reason)


def require_unique_ids(host_ids: Iterable[str]) -> None:
    """Raise ``ValidationError`` naming the first host id that appears twice."""
    seen: set[str] = set()
    for host_id in host_ids:
        if host_id in seen:
            raise ValidationError(
                f"host {host_id} appears twice in the snapshot",
                hint="pass each host once",
            )
        seen.add(host_id)
