"""Flycast over the region's LAN: which packets skip WireGuard, and the edge's checks.

The edge already reaches machines on the hosts of its LAN by their host-local
IPv4, unencrypted (``ferry.proxy.routes.machine_address``). The same trust
model carries Flycast the other way: a host whose region edge is on its LAN
routes the organizations' Flycast /80s to that edge over the LAN link, and
the edge sends its answers back over the same link; a host joined from
another network keeps WireGuard. wireguard-go costs far more per packet than
a veth, so this is what brings Flycast (``DATABASE_URL`` of ``ferry postgres
attach``) close to a direct connection.

"On the LAN" means on-link: the peer's mesh endpoint IPv4 lies in a network of
the interface that holds this node's own endpoint address (``lan_link``). Each
node gives that interface a link-local IPv6 address made of its endpoint
IPv4 (``link_local``: ``fe80::a.b.c.d``), so either side computes the other's
next hop from the mesh snapshot alone, on a bridge as on a switch.

What WireGuard's allowed-IPs check used to guarantee, the edge now checks
itself (``edge_ruleset``): a Flycast-bound packet that arrives on an Ethernet
interface is accepted only from a LAN host's MAC address with a source in that
host's 6PN prefixes; any other (another host's source, the uplink to other
regions, a host the edge has not resolved) is dropped before conntrack.
Packets from WireGuard interfaces were checked by WireGuard, loopback is the
edge itself. The edge's answers from Flycast addresses are marked
(``REPLY_MARK``) and routed by table ``REPLY_TABLE``: each LAN host's prefixes
via its link-local address. The mark re-routes a packet the main table has
routed already, so that table must have a route to the host's prefixes: the
mesh gives it one (every host's allowed IPs through WireGuard); a single
rule and one set lookup, whatever the number of organizations. Pure: no I/O
(``ferry.net.flycast_lan_sync`` applies it).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ferry.model.mesh import MeshNodeKind, MeshSnapshot

__all__ = [
    "REPLY_MARK",
    "REPLY_PRIORITY",
    "REPLY_TABLE",
    "ROUTE_METRIC",
    "ROUTE_PROTO",
    "TABLE",
    "LanHost",
    "LanLink",
    "edge_address",
    "edge_lan_hosts",
    "edge_routes",
    "edge_ruleset",
    "endpoint_ipv4",
    "host_gateway",
    "host_routes",
    "lan_link",
    "link_local",
]

TABLE = "ferry_flycast"
"""The edge's nftables table (``inet`` family); nothing else is touched."""
REPLY_MARK = 0xF1CA
"""The mark of the edge's packets from a Flycast address: routed by ``REPLY_TABLE``."""
REPLY_TABLE = 0xF1CA
REPLY_PRIORITY = 1000
"""Before the main table (32766); a LAN host's prefixes are the only routes in it, so
every other destination falls through to the main table (WireGuard, the uplink)."""
ROUTE_PROTO = 241
"""The ``proto`` of every route this module plans: how a sync finds its own."""
ROUTE_METRIC = 100
"""Below the default 1024 of WireGuard's routes: a Flycast /80 added to the LAN wins
at once, before the mesh drops it from the edge's allowed IPs (no gap)."""


ICMP_ERRORS = "destination-unreachable, packet-too-big, time-exceeded, parameter-problem"
"""What a LAN host, a router, may send from any of its addresses (conntrack relates them)."""


@dataclass(frozen=True)
class LanLink:
    """The interface holding a node's mesh endpoint address, and its IPv4 networks."""

    ifname: str
    address: ipaddress.IPv4Address
    networks: tuple[ipaddress.IPv4Network, ...]

    def on_link(self, address: ipaddress.IPv4Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    @property
    def link_local(self) -> ipaddress.IPv6Address:
        return link_local(self.address)


@dataclass(frozen=True)
class LanHost:
    """A host the edge serves Flycast to over the LAN: where its answers go, and from
    which MAC address (``mac``; None until the edge has resolved it) and 6PN prefixes
    its packets may come."""

    node_id: str
    address: ipaddress.IPv4Address
    prefixes: tuple[str, ...]
    mac: str | None = None

    @property
    def link_local(self) -> ipaddress.IPv6Address:
        return link_local(self.address)


def link_local(address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """The link-local IPv6 address a node uses on its LAN: ``fe80::`` + its IPv4."""
    return ipaddress.IPv6Address(f"fe80::{address}")


def endpoint_ipv4(endpoint: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address of a mesh endpoint ``ip:port`` (None for IPv6 or garbage)."""
    host = endpoint.rpartition(":")[0] or endpoint
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return None


def lan_link(ip_addr_json: str, endpoint: str | None) -> LanLink | None:
    """From ``ip -j -4 addr show``: the interface holding ``endpoint``'s address and its
    networks (host routes and loopback left out); None when no interface holds it (a
    node behind NAT, an IPv6 endpoint)."""
    own = endpoint_ipv4(endpoint) if endpoint else None
    if own is None:
        return None
    for link in json.loads(ip_addr_json or "[]"):
        infos = [a for a in link.get("addr_info", []) if a.get("family") == "inet"]
        if not any(a.get("local") == str(own) for a in infos):
            continue
        if link.get("link_type") == "loopback":
            return None
        networks = tuple(
            ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}").network
            for a in infos
            if int(a.get("prefixlen", 32)) < 32
        )
        return LanLink(str(link["ifname"]), own, networks)
    return None


def host_gateway(
    snapshot: MeshSnapshot, edge_id: str | None, link: LanLink | None
) -> ipaddress.IPv6Address | None:
    """Where a host sends Flycast packets over its LAN: the link-local address of its
    Flycast edge (``edge_id``, ``ferry.agent.mesh_loop.flycast_edge``) when that edge's
    endpoint is on ``link``; None: WireGuard, as before."""
    if link is None or edge_id is None:
        return None
    edge = next((n for n in snapshot.nodes if n.id == edge_id), None)
    where = endpoint_ipv4(edge.endpoint) if edge is not None else None
    return link_local(where) if where is not None and link.on_link(where) else None


def host_routes(
    flycast: Iterable[str],
    gateway: ipaddress.IPv6Address | None,
    ifname: str,
    edge_address: str | None = None,
) -> set[str]:
    """The routes (``ip -6 route`` arguments, without proto and metric) a host wants for
    Flycast over the LAN: every /80 via ``gateway``, and the edge's own mesh address
    (``edge_address``: the source of the connections its kernel forwards to machines,
    ``ferry.net.flycast_fast``); none without a gateway."""
    if gateway is None:
        return set()
    wanted = [*flycast, *([f"{edge_address}/128"] if edge_address else [])]
    return {f"{prefix} via {gateway} dev {ifname}" for prefix in wanted}


def edge_address(snapshot: MeshSnapshot, edge_id: str | None) -> str | None:
    """The mesh address (bare, no prefix length) of the node ``edge_id``; None when the
    snapshot has no such node."""
    return next((n.address for n in snapshot.nodes if n.id == edge_id), None)


def edge_lan_hosts(
    snapshot: MeshSnapshot,
    edge_id: str,
    link: LanLink | None,
    serves: Mapping[str, str | None],
    macs: Mapping[ipaddress.IPv4Address, str] | None = None,
) -> tuple[LanHost, ...]:
    """The hosts that send this edge (``edge_id``) their Flycast traffic over ``link``:
    hosts whose Flycast edge (``serves``: node id → edge id) is this one and whose
    endpoint is on the link, with the MAC address of each in ``macs`` (IPv4 → MAC)."""
    if link is None:
        return ()
    hosts = []
    for node in snapshot.nodes:
        where = endpoint_ipv4(node.endpoint)
        if node.kind is not MeshNodeKind.HOST or serves.get(node.id) != edge_id:
            continue
        if where is None or not link.on_link(where):
            continue
        mac = (macs or {}).get(where)
        hosts.append(LanHost(node.id, where, tuple(node.allowed_ips), mac))
    return tuple(hosts)


def edge_routes(hosts: Sequence[LanHost], ifname: str) -> set[str]:
    """The routes of ``REPLY_TABLE``: each LAN host's prefixes via its link-local address."""
    return {
        f"{ipaddress.IPv6Network(prefix, strict=False)} via {host.link_local} dev {ifname}"
        for host in hosts
        for prefix in host.prefixes
    }


def edge_ruleset(flycast: Sequence[str], hosts: Sequence[LanHost]) -> str:
    """The edge's ``table inet ferry_flycast`` as one ``nft -f`` script (replaces it whole).

    ``lan_in``: Flycast-bound packets from Ethernet only from a LAN host's MAC with a
    source in its prefixes; ``replies``: mark the edge's packets from Flycast addresses
    so that ``REPLY_TABLE`` routes them (only LAN hosts' prefixes are in it).
    """
    elements = f" elements = {{ {', '.join(flycast)} }};" if flycast else ""
    accepts = []
    for host in hosts:
        if host.mac is None or not host.prefixes:
            continue
        accepts += [
            f"    ether saddr {host.mac} ip6 saddr {{ {', '.join(host.prefixes)} }} accept"
            f' comment "{host.node_id}: its own machines, from its own link"',
            f"    ether saddr {host.mac} icmpv6 type {{ {ICMP_ERRORS} }} accept"
            f' comment "{host.node_id} routes: its errors (packet too big) open nothing"',
        ]
    return "\n".join(
        [
            f"table inet {TABLE}",
            f"delete table inet {TABLE}",
            f"table inet {TABLE} {{",
            f"  set flycast {{ type ipv6_addr; flags interval;{elements} }}",
            "  chain lan_in {",
            "    type filter hook prerouting priority raw; policy accept;",
            "    meta iiftype ether ip6 daddr @flycast jump from_lan"
            ' comment "WireGuard checked its sources itself; loopback is the edge"',
            "  }",
            "  chain from_lan {",
            *accepts,
            '    counter drop comment "a forged source, the uplink, or a host not resolved yet"',
            "  }",
            "  chain replies {",
            "    type route hook output priority mangle; policy accept;",
            f"    ip6 saddr @flycast meta mark set {REPLY_MARK:#x}",
            "  }",
            "}",
            "",
        ]
    )
