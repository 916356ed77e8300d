"""Isolation between organizations on one host: the host's nftables ruleset, as text.

From a snapshot of the host (``HostIsolation``: its machines, the mesh
interfaces, what machines may reach on the host, who may open connections to
machines, what is protected) ``render_ruleset`` writes one nftables script
that replaces Ferry's tables in a single transaction (``nft -f``: the old
rules stay until the new ones are in, so there is never a moment without
rules). Pure: no I/O; ``ferry.net.nftables`` applies the text.

The script has two parts: the sets, written here from the snapshot (which
interface owns which addresses, which organizations are on this host, the
services, edges and protected ranges), and the chains, which never change
(``ferry.net.isolation_policy``: the whole policy, each rule with its reason).
``table inet ferry`` holds routed traffic and the host's own addresses;
``table bridge ferry`` is added when the machines' veths share a bridge, to
check sources per port and keep machines apart at layer 2.

Every lookup is a set keyed by interface and/or address: one lookup per rule
whatever the number of machines or organizations, never a rule per pair.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from ferry.errors import ValidationError
from ferry.net import sixpn
from ferry.net.isolation_policy import BRIDGE_CHAINS, INET_CHAINS
from ferry.net.plan import ClusterPlan

__all__ = [
    "DNS_SERVICES",
    "INFRA_PREFIX",
    "TABLE",
    "HostIsolation",
    "MachinePort",
    "Service",
    "cluster_edge_sources",
    "cluster_protected",
    "organizations",
    "removal_script",
    "render_ruleset",
    "validate",
]

TABLE = "ferry"
"""The name of Ferry's tables (``inet`` and ``bridge`` families); nothing else is touched."""

INFRA_PREFIX = ipaddress.IPv6Network(((0xFDAA << 112) | (sixpn.INFRA_NETWORK << 80), 48))
"""Network 0 of 6PN: the platform's hosts and edges on the mesh (``fdaa:0:0::/48``)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class MachinePort:
    """One machine as its host sees it: host-side veth, host-local IPv4, 6PN address.

    ``network`` is the organization's 6PN number; it must be the one the 6PN
    address carries (``sixpn.parse``), or ``validate`` refuses the host.
    """

    veth: str
    ipv4: ipaddress.IPv4Address
    sixpn: ipaddress.IPv6Address
    network: int


@dataclass(frozen=True)
class Service:
    """An address, protocol and port on the host (or beyond) every machine may reach."""

    address: Address
    protocol: Literal["tcp", "udp"]
    port: int


DNS_SERVICES = (
    Service(sixpn.DNS_ADDRESS, "udp", 53),
    Service(sixpn.DNS_ADDRESS, "tcp", 53),
)


@dataclass(frozen=True)
class HostIsolation:
    """A snapshot of one host, all the renderer needs.

    ``bridge``: the bridge the machines' veths are ports of (today's ``br0``),
    or None when each veth is routed on its own. ``edge_sources``: who may open
    connections to machines (the region edge's IPv4, network 0 of 6PN).
    ``protected``: addresses machines never reach, beyond the host's own
    (control plane, registry, agents, the host's addresses, the cluster range).
    """

    machines: tuple[MachinePort, ...]
    mesh_interfaces: tuple[str, ...] = ()
    bridge: str | None = None
    services: tuple[Service, ...] = DNS_SERVICES
    edge_sources: tuple[Network, ...] = (INFRA_PREFIX,)
    protected: tuple[Network, ...] = field(default_factory=tuple)


def validate(host: HostIsolation) -> None:
    """Raise ``ValidationError`` naming the first thing that would make a wrong ruleset."""
    names = [m.veth for m in host.machines] + list(host.mesh_interfaces)
    names += [host.bridge] if host.bridge else []
    for name in names:
        if not _IFNAME.match(name):
            raise ValidationError(
                f"interface name {name!r} is not valid",
                hint="use 1-15 letters, digits, '_', '.' or '-'",
            )
    if len(set(names)) != len(names):
        raise ValidationError(f"an interface is named twice among {', '.join(sorted(names))}")
    for what, values in (
        ("IPv4", [m.ipv4 for m in host.machines]),
        ("6PN", [m.sixpn for m in host.machines]),
    ):
        if len(set(values)) != len(values):
            raise ValidationError(f"two machines on this host have the same {what} address")
    for machine in host.machines:
        found = sixpn.parse(machine.sixpn).network
        if found == sixpn.INFRA_NETWORK:
            raise ValidationError(
                f"machine on {machine.veth} has {machine.sixpn}, an address of the platform's "
                "network 0; a machine's 6PN address is in its organization's network"
            )
        if found != machine.network:
            raise ValidationError(
                f"machine on {machine.veth} has 6PN address {machine.sixpn} of network "
                f"{found}, not of its organization's network {machine.network}"
            )
    for service in host.services:
        if not 1 <= service.port <= 65535:
            raise ValidationError(f"service port {service.port} is out of range 1..65535")


def organizations(host: HostIsolation) -> list[ipaddress.IPv6Network]:
    """The /48 of every organization with a machine on this host, sorted.

    These are the only organizations whose traffic the host forwards: a packet
    from org A's prefix to org A's prefix, one side being a machine here.
    """
    return sorted({sixpn.org_prefix(m.network) for m in host.machines})


def cluster_edge_sources(plan: ClusterPlan) -> tuple[Network, ...]:
    """Who opens connections to machines in the embedded cluster: network 0 of 6PN,
    and each region's edge by the address its connections leave from — its edge
    bridge address towards its own hosts, its uplink address towards other
    regions' (the proxy binds no source). Not the regions' whole /20s: those
    hold other hosts' machines too."""
    addresses = [a for r in plan.regions for a in (r.edge_address, r.uplink_region)]
    return (INFRA_PREFIX, *(ipaddress.ip_network(f"{a}/32") for a in addresses))


def cluster_protected(plan: ClusterPlan) -> tuple[Network, ...]:
    """What machines of the embedded cluster never reach: the whole cluster range
    (control plane, registry, agents, hosts, edges' own addresses, other
    machines' IPv4); the edge's service address is let through as a ``Service``."""
    return (ipaddress.ip_network(plan.cluster_cidr),)


def removal_script() -> str:
    """The script that deletes Ferry's tables (and only them); fine when they are absent."""
    return "".join(
        f"table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n"
        for family in ("inet", "bridge")
    )


def render_ruleset(host: HostIsolation) -> str:
    """The whole script: both of Ferry's tables replaced in one ``nft -f`` transaction.

    Declaring a table and deleting it before defining it again makes the
    script work whether or not an older ruleset is loaded, and drops sets and
    chains the new one no longer has. Raises ``ValidationError`` (``validate``).
    """
    validate(host)
    return removal_script() + _inet_table(host) + (_bridge_table(host) if host.bridge else "")


def _inet_table(host: HostIsolation) -> str:
    machine_ifaces = [m.veth for m in host.machines] + ([host.bridge] if host.bridge else [])
    # A routed veth carries only its machine's addresses; a bridge carries any
    # machine's (the bridge table has pinned each to its port already).
    owners = [(m.veth, m) for m in host.machines]
    if host.bridge:
        owners += [(host.bridge, m) for m in host.machines]
    protected4 = [n for n in host.protected if n.version == 4]
    protected6 = [n for n in host.protected if n.version == 6]
    lines = [
        f"table inet {TABLE} {{",
        _set("machine_ifaces", "ifname", [_q(n) for n in machine_ifaces]),
        _set("mesh_ifaces", "ifname", [_q(n) for n in host.mesh_interfaces]),
        _set("machine_v4", "ifname . ipv4_addr", [f"{_q(i)} . {m.ipv4}" for i, m in owners]),
        _set("machine_v6", "ifname . ipv6_addr", [f"{_q(i)} . {m.sixpn}" for i, m in owners]),
        _nd_target_set(owners),
        _set("machine_addrs4", "ipv4_addr", [str(m.ipv4) for m in host.machines]),
        _set("machine_addrs6", "ipv6_addr", [str(m.sixpn) for m in host.machines]),
        _nd_owned_set(host),
        _same_org_set(host),
        _set("services4", "ipv4_addr . inet_proto . inet_service", _services(host, 4)),
        _set("services6", "ipv6_addr . inet_proto . inet_service", _services(host, 6)),
        _set("edge4", "ipv4_addr", _nets(host.edge_sources, 4), interval=True),
        _set("edge6", "ipv6_addr", _nets(host.edge_sources, 6), interval=True),
        _set("protected4", "ipv4_addr", [str(n) for n in protected4], interval=True),
        _set("protected6", "ipv6_addr", [str(n) for n in protected6], interval=True),
        INET_CHAINS,
        "}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _bridge_table(host: HostIsolation) -> str:
    owners = [(m.veth, m) for m in host.machines]
    lines = [
        f"table bridge {TABLE} {{",
        _set("ports", "ifname", [_q(m.veth) for m in host.machines]),
        _set("machine_addrs4", "ipv4_addr", [str(m.ipv4) for m in host.machines]),
        _set("machine_addrs6", "ipv6_addr", [str(m.sixpn) for m in host.machines]),
        _nd_owned_set(host),
        _set("machine_v4", "ifname . ipv4_addr", [f"{_q(i)} . {m.ipv4}" for i, m in owners]),
        _set("machine_v6", "ifname . ipv6_addr", [f"{_q(i)} . {m.sixpn}" for i, m in owners]),
        _nd_target_set(owners),
        _same_org_set(host),
        BRIDGE_CHAINS,
        "}",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def _nd_target_set(owners: Iterable[tuple[str, MachinePort]]) -> str:
    # nft 1.0.6 has no ``icmpv6 taddr``: the target is read raw, so keyed as an integer.
    elements = [f"{_q(i)} . {int(m.sixpn):#034x}" for i, m in owners]
    return _typeof_set("nd_targets", "meta iifname . @th,64,128", elements)


def _nd_owned_set(host: HostIsolation) -> str:
    elements = [f"{int(m.sixpn):#034x}" for m in host.machines]
    return _typeof_set("nd_owned", "@th,64,128", elements)


def _same_org_set(host: HostIsolation) -> str:
    elements = [f"{p} . {p}" for p in organizations(host)]
    return _set("same_org", "ipv6_addr . ipv6_addr", elements, interval=True)


def _services(host: HostIsolation, version: int) -> list[str]:
    return [
        f"{s.address} . {s.protocol} . {s.port}"
        for s in host.services
        if s.address.version == version
    ]


def _nets(networks: Iterable[Network], version: int) -> list[str]:
    return [str(n) for n in networks if n.version == version]


def _set(name: str, type_: str, elements: list[str], *, interval: bool = False) -> str:
    flags = " flags interval;" if interval else ""
    body = f" elements = {{ {', '.join(elements)} }};" if elements else ""
    return f"  set {name} {{ type {type_};{flags}{body} }}"


def _typeof_set(name: str, typeof: str, elements: list[str]) -> str:
    body = f" elements = {{ {', '.join(elements)} }};" if elements else ""
    return f"  set {name} {{ typeof {typeof};{body} }}"


def _q(text: str) -> str:
    """A quoted nft string; ``validate`` has kept quotes and spaces out of names."""
    return f'"{text}"'
