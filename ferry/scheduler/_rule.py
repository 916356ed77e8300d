"""The placement rule written plainly (``place_machine``) and the words of its answers.

``place_machine`` reads the whole snapshot for one machine; ``Scheduler``
must agree with it on every input, and the tests hold it to that. Both build
their one-line reasons with the ``reason_*`` functions here, so the same
decision is always worded the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ferry.errors import ValidationError
from ferry.scheduler._types import HostCapacity, NoPlacement, Placement, PlacementRequest

__all__ = [
    "largest_free",
    "place_machine",
    "reason_no_host_up",
    "reason_no_hosts",
    "reason_no_room",
    "reason_placed",
    "require_unique_ids",
]


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
        return NoPlacement(region, reason_no_hosts(region))
    up = [host for host in in_region if host.up]
    down = len(in_region) - len(up)
    if not up:
        return NoPlacement(region, reason_no_host_up(region, down))
    fitting = [
        host
        for host in up
        if host.free_cpus >= request.cpus and host.free_memory_mb >= request.memory_mb
    ]
    if not fitting:
        largest = largest_free((host.host_id, host.free_cpus, host.free_memory_mb) for host in up)
        reason = reason_no_room(region, request.cpus, request.memory_mb, largest, len(up), down)
        return NoPlacement(region, reason)
    app = request.app
    best = min(
        fitting,
        key=lambda host: (host.app_machines.get(app, 0), -host.free_memory_mb, host.host_id),
    )
    in_region_total = sum(host.app_machines.get(app, 0) for host in in_region)
    reason = reason_placed(
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


def reason_placed(
    host_id: str,
    app: str,
    region: str,
    app_on_host: int,
    app_in_region: int,
    free_memory_mb: int,
    memory_mb: int,
) -> str:
    """Why ``host_id`` was chosen, in the terms of the decision (figures before placing).

    >>> reason_placed("ams-1", "web", "ams", 1, 3, 6144, 8192)
    'host ams-1: had 1 of 3 web machines in ams, 75% memory free'
    """
    percent = free_memory_mb * 100 // memory_mb
    return (
        f"host {host_id}: had {app_on_host} of {app_in_region} {app} machines in {region}, "
        f"{percent}% memory free"
    )


def reason_no_hosts(region: str) -> str:
    """The region has no host at all, up or down."""
    return f"region {region} has no hosts"


def reason_no_host_up(region: str, down: int) -> str:
    """Every host of the region is down."""
    return f"no host is up in region {region} ({_plural(down, 'host')} down)"


def reason_no_room(
    region: str,
    cpus: int,
    memory_mb: int,
    largest: tuple[str, int, int],
    up: int,
    down: int,
) -> str:
    """No up host has room; ``largest`` is ``(host_id, free_cpus, free_memory_mb)``."""
    host_id, free_cpus, free_memory_mb = largest
    return (
        f"no host in region {region} has room for {_plural(cpus, 'cpu')} / {memory_mb} MB: "
        f"largest free is {_plural(max(free_cpus, 0), 'cpu')} / {max(free_memory_mb, 0)} MB "
        f"on {host_id} ({_plural(up, 'host')} up, {down} down)"
    )


def largest_free(candidates: Iterable[tuple[str, int, int]]) -> tuple[str, int, int]:
    """The host with the most free memory, then the most free cpus, then the lowest id.

    ``candidates`` are ``(host_id, free_cpus, free_memory_mb)``; must not be empty.
    """
    return min(candidates, key=lambda c: (-c[2], -c[1], c[0]))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
