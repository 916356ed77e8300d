"""Whether a region has room for one machine with its own volume (a Postgres member),
asked before anything is made (``GET /v1/platform/room``; see docs/postgres.md).

``check_room`` is pure over snapshots: a host of the region must be up, have the
volume's size free (``free_bytes``: every volume counted at its full size) *and* the
machine's CPUs and memory free (the scheduler's own ``place_machine`` on that host
alone), because a machine with a volume runs on its volume's host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ferry.errors import CapacityError
from ferry.model import Host, HostStatus, Machine
from ferry.model.volume import Volume
from ferry.scheduler import NoPlacement, PlacementRequest, place_machine
from ferry.server.placement import host_capacities
from ferry.server.volume_placement import GIB, check_size, free_bytes

__all__ = ["Room", "check_room"]


@dataclass(frozen=True)
class Room:
    """The host that would take the machine and its volume."""

    region: str
    host_id: str


def check_room(
    region: str,
    size_gb: int,
    cpus: int,
    memory_mb: int,
    hosts: Iterable[Host],
    machines: Iterable[Machine],
    volumes: Iterable[Volume],
    capacities: Mapping[str, int],
) -> Room:
    """The first host (by id) of ``region`` with room for both; else ``CapacityError``
    naming the region and what is short, or ``ValidationError`` for a bad size."""
    check_size(size_gb)
    volumes, machines = list(volumes), list(machines)
    up = sorted(
        (h for h in hosts if h.region == region and h.status is HostStatus.UP), key=lambda h: h.id
    )
    if not up:
        raise CapacityError(
            f"region {region} has no host that is up",
            hint="choose another region, or start a host there",
        )
    disk = [h for h in up if free_bytes(h.id, capacities, volumes) >= size_gb * GIB]
    if not disk:
        most = max(free_bytes(h.id, capacities, volumes) for h in up)
        raise CapacityError(
            f"no host in region {region} has room for a {size_gb} GB volume "
            f"(the most free is {max(most, 0) / GIB:.1f} GB)",
            hint="ask for a smaller --volume-size, choose another region, or free space there",
        )
    request = PlacementRequest(app="room-check", region=region, cpus=cpus, memory_mb=memory_mb)
    reason = ""
    for host in disk:
        outcome = place_machine(request, host_capacities([host], machines))
        if not isinstance(outcome, NoPlacement):
            return Room(region, host.id)
        reason = outcome.reason
    raise CapacityError(
        f"no host in region {region} with room for a {size_gb} GB volume also has "
        f"{cpus} CPU and {memory_mb} MB free for its machine ({reason})",
        hint="choose a smaller --vm-size or another region, or free capacity there",
    )
