"""Pure helpers of machine creation: known regions, host capacities, address allocation.

No I/O: each function takes snapshots (hosts, machines) and returns a value
or raises a ``FerryError`` whose message a user can act on.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence

from ferry.autoscale.distances import RegionDistances
from ferry.errors import CapacityError, ValidationError
from ferry.model import Host, HostStatus, Machine, MachineState
from ferry.net.sixpn import lowest_free, machine_address, parse
from ferry.scheduler import HostCapacity

__all__ = [
    "allocate_host_ip",
    "allocate_private_ip",
    "choose_region",
    "fallback_regions",
    "host_capacities",
    "known_regions",
    "placement_note",
]


def known_regions(hosts: Iterable[Host]) -> list[str]:
    """The region codes that have at least one registered host, sorted."""
    return sorted({h.region for h in hosts})


def choose_region(requested: str | None, regions: Sequence[str]) -> str:
    """The region to place in: ``requested`` if it is one of ``regions`` (the
    sorted ``known_regions``), else the first.

    Raises ``CapacityError`` when no host is registered at all and
    ``ValidationError`` naming the known regions for an unknown one.
    """
    if not regions:
        raise CapacityError(
            "no hosts are registered, so there is nowhere to run a machine",
            hint="start `ferry agent` on a host, or `ferry cluster up`",
        )
    if requested is None or requested == "":
        return regions[0]
    if requested not in regions:
        raise ValidationError(
            f"unknown region {requested!r}; known regions: {', '.join(regions)}",
            hint="pick one of the known regions",
        )
    return requested


def fallback_regions(wanted: str, regions: Sequence[str], distances: RegionDistances) -> list[str]:
    """The other ``regions`` (those with hosts), nearest to ``wanted`` first
    (alphabetical without RTTs)."""
    return [r for r in distances.by_distance(wanted, list(regions)) if r != wanted]


def placement_note(placed: str, refusal: str, distances: RegionDistances) -> str:
    """What a fallback placement tells the user, e.g.
    ``placed in iad: no host in region ams has room for … (nearest region with room, by RTT)``."""
    basis = "by round-trip time" if distances.known else "alphabetical: no latency figures"
    return f"placed in {placed}: {refusal} (nearest region with room, {basis})"


def _occupies_host(machine: Machine) -> bool:
    return machine.state is not MachineState.DESTROYED


def host_capacities(
    hosts: Iterable[Host], machines: Iterable[Machine], *, ignore_machine: str | None = None
) -> list[HostCapacity]:
    """Capacity snapshots for the scheduler.

    Every machine that is not yet reported destroyed counts against its host,
    including stopped ones (their resources stay reserved, as on Fly).
    ``ignore_machine`` leaves one machine out (to re-check its own resize).
    """
    hosts = list(hosts)
    return capacities_of(
        hosts,
        (
            (
                m.host_id,
                m.app_name,
                m.config.effective_guest.cpus,
                m.config.effective_guest.memory_mb,
            )
            for m in machines
            if _occupies_host(m) and m.id != ignore_machine
        ),
    )


def capacities_of(
    hosts: Iterable[Host], claims: Iterable[tuple[str, str, int, int]]
) -> list[HostCapacity]:
    """Each host's capacity once ``claims`` — ``(host_id, app, cpus, memory_mb)`` of
    every machine that holds room on a host — are counted against it."""
    cpus: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    per_app: dict[str, Counter[str]] = {}
    for host_id, app, claimed_cpus, claimed_memory in claims:
        cpus[host_id] += claimed_cpus
        memory[host_id] += claimed_memory
        per_app.setdefault(host_id, Counter())[app] += 1
    return [
        HostCapacity(
            host_id=h.id,
            region=h.region,
            cpus=h.cpus,
            memory_mb=h.memory_mb,
            used_cpus=cpus[h.id],
            used_memory_mb=memory[h.id],
            app_machines=dict(per_app.get(h.id, {})),
            up=h.status is HostStatus.UP,
        )
        for h in hosts
    ]


def allocate_host_ip(host: Host, machines: Iterable[Machine]) -> str:
    """The lowest free address of ``host.machine_subnet``.

    Skips the network address, the ``.1`` gateway and the broadcast address;
    addresses of machines reported destroyed are free again. Raises
    ``CapacityError`` when the subnet is full and ``ValidationError`` if the
    host registered an unusable subnet.
    """
    try:
        network = ipaddress.ip_network(host.machine_subnet, strict=False)
    except ValueError as exc:
        raise ValidationError(
            f"host {host.id} has an invalid machine_subnet {host.machine_subnet!r}",
            hint="re-register the host with a CIDR such as 10.1.0.0/24",
        ) from exc
    used = {m.host_ip for m in machines if m.host_id == host.id and _occupies_host(m)}
    gateway = network.network_address + 1
    for address in network.hosts():
        if address == gateway:
            continue
        text = str(address)
        if text not in used:
            return text
    raise CapacityError(
        f"host {host.id} in region {host.region} has no free machine address "
        f"in {host.machine_subnet}",
        hint="destroy unused machines or register the host with a larger subnet",
    )


def allocate_private_ip(host: Host, network: int, machines: Iterable[Machine]) -> str:
    """The 6PN address of a new machine of the organization with 6PN ``network`` on
    ``host``: the lowest machine number that no machine of the host that is not
    destroyed holds (``ferry.net.sixpn``). ``CapacityView.allocate_private_ip``
    answers the same from its memory; this is the computation from a snapshot."""
    used = {
        parse(m.private_ip).machine
        for m in machines
        if m.host_id == host.id and _occupies_host(m) and m.private_ip
    }
    return str(machine_address(network, host.sixpn_host, lowest_free(used)))
