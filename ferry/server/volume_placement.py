"""Pure decisions about volumes: which host gets a new volume, whether a size is allowed.

No I/O: each function takes snapshots (hosts, volumes, reported capacities)
and returns a value or raises a ``FerryError`` a user can act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from ferry.errors import CapacityError, ValidationError
from ferry.model import Host, HostStatus
from ferry.model.volume import MAX_VOLUME_GB, Volume, VolumeState

__all__ = ["GIB", "check_size", "choose_volume_host", "free_bytes", "region_of_request"]

GIB = 1024**3


def check_size(size_gb: int, *, at_least: int = 1) -> None:
    """Raise ``ValidationError`` unless ``at_least <= size_gb <= MAX_VOLUME_GB``."""
    if size_gb < at_least:
        floor = "1 GB (Fly's minimum)" if at_least == 1 else f"{at_least} GB"
        raise ValidationError(
            f"size_gb {size_gb} is too small: a volume is at least {floor}",
            hint=f"ask for --size {at_least} or more",
        )
    if size_gb > MAX_VOLUME_GB:
        raise ValidationError(
            f"size_gb {size_gb} is over Ferry's limit of {MAX_VOLUME_GB} GB per volume",
            hint="split the data over several volumes and machines",
        )


def free_bytes(host_id: str, capacities: Mapping[str, int], volumes: Iterable[Volume]) -> int:
    """Bytes ``host_id`` can still promise: its reported capacity minus the full size of
    every volume it holds that is not destroyed (images are sparse, but each may fill)."""
    promised = sum(
        v.size_gb * GIB
        for v in volumes
        if v.host_id == host_id and v.state is not VolumeState.DESTROYED
    )
    return capacities.get(host_id, 0) - promised


def choose_volume_host(
    name: str,
    region: str,
    size_gb: int,
    hosts: Iterable[Host],
    volumes: Iterable[Volume],
    capacities: Mapping[str, int],
    *,
    unique_zone: bool = True,
) -> Host:
    """The up host of ``region`` with the most room that fits ``size_gb`` GB.

    With ``unique_zone`` (Fly's ``require_unique_zone``), hosts without a volume
    named ``name`` come first; if every fitting host has one, one of them is used
    (a host is its own zone, and a region may have a single host). A host that
    has not reported its capacity has none. Raises ``CapacityError`` naming the
    region and the most room any of its hosts has.
    """
    volumes = list(volumes)
    candidates = [h for h in hosts if h.region == region and h.status is HostStatus.UP]
    if not candidates:
        raise CapacityError(
            f"region {region} has no host that is up to hold a volume",
            hint="choose another region, or start a host there",
        )
    named: Counter[str] = Counter(
        v.host_id for v in volumes if v.name == name and v.state is not VolumeState.DESTROYED
    )
    room = {h.id: free_bytes(h.id, capacities, volumes) for h in candidates}
    fitting = [h for h in candidates if room[h.id] >= size_gb * GIB]
    if not fitting:
        best = max(room.values())
        raise CapacityError(
            f"no host in region {region} has room for a {size_gb} GB volume "
            f"(the most free is {max(best, 0) / GIB:.1f} GB)",
            hint="ask for a smaller size, choose another region, or free space on the host",
        )

    def preference(host: Host) -> tuple[int, int, str]:
        clash = named[host.id] if unique_zone else 0
        return (clash, -room[host.id], host.id)

    return min(fitting, key=preference)


def region_of_request(requested: str | None, known: list[str]) -> str:
    """The region a volume goes to: the requested one if known, else the only one.

    Raises ``ValidationError``: unknown region, or none given while several exist.
    """
    if requested:
        if requested not in known:
            raise ValidationError(
                f"unknown region {requested!r}; known regions: {', '.join(known) or 'none'}",
                hint="pick one of the known regions",
            )
        return requested
    if len(known) == 1:
        return known[0]
    raise ValidationError(
        "a volume needs a region: it lives on one host there",
        hint=f"pass --region (one of {', '.join(known) or 'none: start a host first'})",
    )
