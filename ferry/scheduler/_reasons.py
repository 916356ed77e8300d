"""One-line reasons for placements and refusals, shared by every placement path.

Both ``place_machine`` and ``Scheduler`` build their reasons here, so the two
always word the same decision the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["largest_free", "no_host_up", "no_hosts", "no_room", "placed"]


def placed(
    host_id: str,
    app: str,
    region: str,
    app_on_host: int,
    app_in_region: int,
    free_memory_mb: int,
    memory_mb: int,
) -> str:
    """Why ``host_id`` was chosen, in the terms of the decision (figures before placing).

    >>> placed("ams-1", "web", "ams", 1, 3, 6144, 8192)
    'host ams-1: had 1 of 3 web machines in ams, 75% memory free'
    """
    percent = free_memory_mb * 100 // memory_mb
    return (
        f"host {host_id}: had {app_on_host} of {app_in_region} {app} machines in {region}, "
        f"{percent}% memory free"
    )


def no_hosts(region: str) -> str:
    """The region has no host at all, up or down."""
    return f"region {region} has no hosts"


def no_host_up(region: str, down: int) -> str:
    """Every host of the region is down."""
    return f"no host is up in region {region} ({_plural(down, 'host')} down)"


def no_room(
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
