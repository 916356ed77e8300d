"""Addressing of the embedded cluster: a pure plan of namespaces, links and subnets.

Everything lives in one /16, ``10.B.0.0/16``::

    10.B.0.0/24           root namespace <-> core link   (root .1, core .2)
    10.B.(16r).0/24       region r's edge bridge         (edge .1, host h at .10+h)
    10.B.(16r+1+h).0/24   machines of host h in region r (host bridge gateway .1)
    10.B.(16r+15).0/30    core <-> region r uplink       (core .1, region .2)
    10.B.250.1/32         the edge address, on every region's loopback (emulated anycast)

so region r owns ``10.B.(16r).0/20`` and the core routes each /20 to its
region. Up to 14 regions of up to 14 hosts, 253 machines per host.
Namespaces are named ``<prefix>-core``, ``<prefix>-<region>`` and
``<prefix>-<region>-<h>``; ``prefix`` makes concurrent clusters distinct.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.errors import ValidationError

MAX_REGIONS = 14
MAX_HOSTS_PER_REGION = 14


@dataclass(frozen=True)
class HostPlan:
    host_id: str  # e.g. "ams-1"
    region: str
    index: int  # 0-based within the region
    netns: str
    address: str  # on the region bridge
    gateway: str  # the region edge's bridge address
    machine_subnet: str  # CIDR
    machine_gateway: str  # host bridge address inside machine_subnet


@dataclass(frozen=True)
class RegionPlan:
    code: str
    index: int  # 1-based
    netns: str
    edge_address: str  # region edge's address on its bridge
    bridge_cidr: str
    uplink_core: str  # core side of the core<->region link
    uplink_region: str  # region side
    aggregate: str  # the /20 routed to this region
    hosts: tuple[HostPlan, ...]


@dataclass(frozen=True)
class RemoteHostPlan:
    """A host that shares no network with the rest: a server joined from elsewhere.

    Its namespace hangs off the core (the WAN) by a /30 of its own; the core
    lets it reach only the control plane's address and the other nodes'
    WireGuard ports, so its machines talk to everything else over 6PN.
    Its machines' host-local subnet lies outside every region's aggregate.
    """

    host_id: str  # e.g. "sin-remote"
    region: str
    netns: str
    link: str  # the core side's veth name
    address: str  # its end of the /30: where others reach its WireGuard
    core_address: str  # the core's end, its gateway
    machine_subnet: str


@dataclass(frozen=True)
class ClusterPlan:
    prefix: str
    octet: int
    core_netns: str
    root_address: str  # root namespace side of the root<->core link
    core_address: str
    cluster_cidr: str
    edge_address: str  # the same in every region: a client reaches its own region's proxy
    regions: tuple[RegionPlan, ...]
    remote_hosts: tuple[RemoteHostPlan, ...] = ()

    def region(self, code: str) -> RegionPlan:
        for region in self.regions:
            if region.code == code:
                return region
        known = ", ".join(r.code for r in self.regions)
        raise ValidationError(f"unknown region {code!r}", hint=f"known regions: {known}")

    @property
    def hosts(self) -> tuple[HostPlan, ...]:
        return tuple(h for r in self.regions for h in r.hosts)


def plan_cluster(
    prefix: str,
    octet: int,
    regions: list[str],
    hosts_per_region: int,
    remote_regions: tuple[str, ...] = (),
) -> ClusterPlan:
    """Lay out the cluster's namespaces and addresses. Pure; raises ``ValidationError``.

    ``remote_regions``: a region per remote host (``RemoteHostPlan``), at most one each.
    """
    if not 1 <= len(regions) <= MAX_REGIONS:
        raise ValidationError(
            f"between 1 and {MAX_REGIONS} regions are supported, got {len(regions)}"
        )
    if len(set(regions)) != len(regions):
        raise ValidationError(f"regions are listed twice: {','.join(regions)}")
    if not 1 <= hosts_per_region <= MAX_HOSTS_PER_REGION:
        raise ValidationError(
            f"hosts per region must be between 1 and {MAX_HOSTS_PER_REGION}, got {hosts_per_region}"
        )
    if not 1 <= octet <= 254:
        raise ValidationError(f"network octet must be between 1 and 254, got {octet}")
    for code in regions:
        if not (code.isalnum() and code.islower() and 2 <= len(code) <= 6):
            raise ValidationError(
                f"invalid region code {code!r}", hint="use 2-6 lowercase letters, like ams or iad"
            )
    base = f"10.{octet}"
    planned = []
    for r, code in enumerate(regions, start=1):
        netns = f"{prefix}-{code}"
        edge = f"{base}.{16 * r}.1"
        hosts = tuple(
            HostPlan(
                host_id=f"{code}-{h + 1}",
                region=code,
                index=h,
                netns=f"{netns}-{h + 1}",
                address=f"{base}.{16 * r}.{10 + h}",
                gateway=edge,
                machine_subnet=f"{base}.{16 * r + 1 + h}.0/24",
                machine_gateway=f"{base}.{16 * r + 1 + h}.1",
            )
            for h in range(hosts_per_region)
        )
        planned.append(
            RegionPlan(
                code=code,
                index=r,
                netns=netns,
                edge_address=edge,
                bridge_cidr=f"{base}.{16 * r}.0/24",
                uplink_core=f"{base}.{16 * r + 15}.1",
                uplink_region=f"{base}.{16 * r + 15}.2",
                aggregate=f"{base}.{16 * r}.0/20",
                hosts=hosts,
            )
        )
    remote = _remote_hosts(prefix, base, regions, remote_regions)
    return ClusterPlan(
        remote_hosts=remote,
        prefix=prefix,
        octet=octet,
        core_netns=f"{prefix}-core",
        root_address=f"{base}.0.1",
        core_address=f"{base}.0.2",
        cluster_cidr=f"{base}.0.0/16",
        edge_address=f"{base}.250.1",
        regions=tuple(planned),
    )


def _remote_hosts(
    prefix: str, base: str, regions: list[str], remote_regions: tuple[str, ...]
) -> tuple[RemoteHostPlan, ...]:
    unknown = sorted(set(remote_regions) - set(regions))
    if unknown:
        raise ValidationError(
            f"a remote host's region must be one of the cluster's: {', '.join(unknown)} is not",
            hint=f"the cluster's regions: {', '.join(regions)}",
        )
    if len(set(remote_regions)) != len(remote_regions):
        raise ValidationError("one remote host per region: a region is listed twice")
    planned = []
    for code in remote_regions:
        r = regions.index(code) + 1
        # 10.B.(16r+15).4/30, beside the region's uplink /30, inside its aggregate (so the
        # WAN delays it as the region's); machines in a /26 of 10.B.240-243, outside all.
        machines = f"{base}.{240 + (r - 1) // 4}.{(r - 1) % 4 * 64}/26"
        planned.append(
            RemoteHostPlan(
                host_id=f"{code}-remote",
                region=code,
                netns=f"{prefix}-{code}-r",
                link=f"x-{code}",
                address=f"{base}.{16 * r + 15}.6",
                core_address=f"{base}.{16 * r + 15}.5",
                machine_subnet=machines,
            )
        )
    return tuple(planned)
