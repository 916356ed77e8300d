"""A region's gateway for developers' WireGuard peers: addresses, a pure plan, an adapter.

Addresses (Ferry's choice; Fly's own layout is not public). A peer of the
organization with 6PN network ``N`` gets number ``P`` (≥ 1, unique in the
organization) and the /120 ::

    fdaa:NNNN:NNNN:0000:0000:PPPP:PPPP:0000/120     address …:0002

i.e. the machine field of **host 0** of the organization's network. No
machine is ever placed on host 0 (host numbers start at 1,
``sixpn.host_prefix`` refuses 0), so a peer's address cannot collide with a
machine's, and ``sixpn.parse`` still reads the organization off it (the DNS
server and the hosts' firewalls need nothing new). Host 0, machine 0 holds
the organization's resolver address ``fdaa:NNNN:NNNN::3`` (``org_resolver``,
Fly's ``DNS = fdaa:<net>::3``): the gateway DNATs it to the real resolver.

The gateway is the region's edge: the same key pair as its mesh interface,
on a SEPARATE WireGuard interface listening on the port after the mesh's
(``gateway_port``; 51821 beside 51820). ``plan_gateway`` turns the peers of
the region (``GatewayPeer``) and the interface's current peers into the
changes to make (``ferry.net.mesh.plan_mesh`` does the comparing and refuses
duplicate keys and overlapping prefixes), the routes (each peer's /120
through the interface) and an nftables ruleset that lets a peer reach only
its own organization's /48, the resolver on port 53 and its organization's
Flycast addresses (which the edge itself serves, ``ferry.net.flycast``) — never another
organization, never the gateway's or hosts' own addresses (network 0) — and
lets only its own organization reach it. ``PeerGateway.sync`` applies a plan.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import ValidationError
from ferry.net import iproute, nftables, wireguard
from ferry.net.flycast import flycast_prefix
from ferry.net.mesh import MeshPeer, MeshSelf, PeerChange, Refusal, WgPeer, plan_mesh
from ferry.net.sixpn import DNS_ADDRESS, INFRA_NETWORK, ORG_PREFIXLEN, SixpnAddress, org_prefix
from ferry.net.sixpn import parse as parse_sixpn

__all__ = [
    "PEER_PREFIXLEN",
    "GatewayPeer",
    "GatewayPlan",
    "PeerGateway",
    "gateway_endpoint",
    "gateway_interface_name",
    "gateway_port",
    "org_resolver",
    "peer_address",
    "peer_prefix",
    "plan_gateway",
    "ruleset",
]

PEER_HOST = 0
"""The 6PN host number of every peer: never a machine's host."""
PEER_PREFIXLEN = 120
TABLE = "ferry_peers"
_SCOPE = re.compile(r"^[a-z0-9]{1,6}$")
# The gateway interface's own address: link-local, so it is nothing a peer can reach.
GATEWAY_ADDRESS = "fe80::1/64"


def peer_prefix(network: int, number: int) -> ipaddress.IPv6Network:
    """The /120 of peer ``number`` (≥ 1) of the organization with 6PN ``network``."""
    if number < 1:
        raise ValidationError(f"peer number {number} must be at least 1")
    org_prefix(network)  # checks network ≥ 1
    base = SixpnAddress(network, PEER_HOST, number).prefix.network_address
    return ipaddress.IPv6Network((base, PEER_PREFIXLEN))


def peer_address(network: int, number: int) -> ipaddress.IPv6Address:
    """The peer's own address, ``…:2`` of its /120 (as a machine's is of its /112)."""
    return peer_prefix(network, number)[2]


def org_resolver(network: int) -> ipaddress.IPv6Address:
    """The resolver address a peer of ``network`` is given: ``fdaa:<network>::3``."""
    return org_prefix(network)[3]


def gateway_port(mesh_endpoint: str) -> int:
    """The UDP port of the peer interface: the one after the edge's mesh port."""
    port = int(mesh_endpoint.rpartition(":")[2]) + 1
    if port > 65535:
        raise ValidationError(f"edge mesh endpoint {mesh_endpoint} leaves no port for peers")
    return port


def gateway_endpoint(mesh_endpoint: str) -> str:
    """What a peer dials: the edge's mesh address, on ``gateway_port``."""
    return f"{mesh_endpoint.rpartition(':')[0]}:{gateway_port(mesh_endpoint)}"


def gateway_interface_name(scope: str, number: int) -> str:
    """The peer interface of the edge with mesh number ``number``: ``<scope>g<hex>``
    (beside its mesh interface, ``wireguard.interface_name(scope, number, "e")``)."""
    return wireguard.interface_name(scope, number, "g")


@dataclass(frozen=True)
class GatewayPeer:
    """One developer peer as its gateway configures it (from the API's ``WireGuardPeer``)."""

    name: str
    org_slug: str
    public_key: str
    prefix: str  # its /120
    org_prefix: str  # its organization's /48


@dataclass(frozen=True)
class GatewayPlan:
    changes: tuple[PeerChange, ...]
    refused: tuple[Refusal, ...]
    routes: tuple[str, ...]
    ruleset: str
    """``nft -f`` text replacing the gateway's table atomically."""


def plan_gateway(
    gateway_key: str,
    peers: Sequence[GatewayPeer],
    current: Sequence[WgPeer],
    *,
    ifname: str,
    resolver: ipaddress.IPv6Address = DNS_ADDRESS,
) -> GatewayPlan:
    """The changes, routes and rules that make ``ifname`` serve exactly ``peers``.

    A peer is refused (with a reason; it gets no rule and no route, and a peer
    already configured under its key keeps nothing new) when its /120 is not a
    peer prefix inside its own organization's /48, or when ``plan_mesh``
    refuses it (bad or duplicate key, overlapping prefix). Pure.
    """
    refused: list[Refusal] = []
    wanted: list[MeshPeer] = []
    for peer in peers:
        node = f"{peer.org_slug}/{peer.name}"
        if problem := _prefix_problem(peer):
            refused.append(Refusal(node, f"peer {node} refused: {problem}"))
            continue
        wanted.append(MeshPeer(node, peer.public_key, None, (peer.prefix,)))
    me = MeshSelf("gateway", gateway_key, None, ())
    mesh = plan_mesh(me, wanted, current)
    refused += mesh.refused
    kept = {r.node_id for r in refused}
    allowed = [p for p in peers if f"{p.org_slug}/{p.name}" not in kept]
    return GatewayPlan(
        mesh.changes, tuple(refused), mesh.routes, ruleset(ifname, allowed, resolver)
    )


def ruleset(ifname: str, peers: Sequence[GatewayPeer], resolver: ipaddress.IPv6Address) -> str:
    """nftables text for the gateway's table: see the module doc. Peers not given get
    nothing: all traffic of the interface not allowed here is dropped."""
    iif, oif = f'iifname "{ifname}"', f'oifname "{ifname}"'
    dns = "meta l4proto { tcp, udp } th dport 53"
    nat: list[str] = []
    inbound: list[str] = []
    forward: list[str] = []
    for peer in peers:
        own = str(ipaddress.IPv6Network(peer.org_prefix))
        src = f"{iif} ip6 saddr {peer.prefix}"
        org_dns = org_resolver(parse_sixpn(ipaddress.IPv6Network(own)[0]).network)
        nat.append(f"{src} ip6 daddr {org_dns} {dns} dnat ip6 to {resolver}")
        inbound.append(f"{src} ip6 daddr {resolver} {dns} accept")
        # The edge owns its organization's Flycast addresses: its proxy answers there.
        org_flycast = flycast_prefix(parse_sixpn(ipaddress.IPv6Network(own)[0]).network)
        inbound.append(f"{src} ip6 daddr {org_flycast} meta l4proto tcp accept")
        forward.append(f"{src} ip6 daddr {resolver} {dns} accept")
        forward.append(f"{src} ip6 daddr {own} accept")
        forward.append(f"{oif} ip6 saddr {own} ip6 daddr {peer.prefix} accept")
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain dns {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        *(f"    {rule}" for rule in nat),
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy accept;",
        *(f"    {rule}" for rule in inbound),
        f"    {iif} drop",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        *(f"    {rule}" for rule in forward),
        f"    {iif} drop",
        f"    {oif} drop",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _prefix_problem(peer: GatewayPeer) -> str | None:
    try:
        own = ipaddress.IPv6Network(peer.org_prefix)
        mine = ipaddress.IPv6Network(peer.prefix)
        network = parse_sixpn(own.network_address).network
        where = parse_sixpn(mine.network_address)
    except (ValueError, ValidationError) as exc:
        return str(exc)
    if own.prefixlen != ORG_PREFIXLEN or network == INFRA_NETWORK or own != org_prefix(network):
        return f"{own} is not an organization's 6PN /48"
    if mine.prefixlen != PEER_PREFIXLEN or where.host != PEER_HOST or not mine.subnet_of(own):
        return f"{mine} is not a peer /120 of {own}"
    return None


@dataclass(frozen=True)
class GatewayReport:
    restarted: bool
    reasons: tuple[str, ...]
    refused: tuple[Refusal, ...]


@dataclass(frozen=True)
class PeerGateway:
    """The peer interface of one region's edge (the seam the edge calls).

    ``key_file`` is the edge's mesh key (the peers were given its public key);
    ``listen_port`` is ``gateway_port`` of the edge's mesh endpoint; ``netns``
    the edge's namespace (None on a real server); ``resolver`` where DNS
    queries to ``fdaa:<org>::3`` go (a resolver reachable from the edge).
    """

    ifname: str
    key_file: Path
    listen_port: int
    netns: str | None = None
    resolver: ipaddress.IPv6Address = DNS_ADDRESS

    def sync(self, peers: Sequence[GatewayPeer]) -> GatewayReport:
        """One level-triggered cycle: interface up, peers, routes, rules. Blocking
        (execs ``wg``, ``ip``, ``nft``); raises ``NetworkError``."""
        restarted = wireguard.ensure_interface(
            self.netns, self.ifname, self.key_file, self.listen_port, GATEWAY_ADDRESS
        )
        iproute.set_sysctl(self.netns, "net.ipv6.conf.all.forwarding", "1")
        plan = plan_gateway(
            wireguard.public_key(self.key_file),
            peers,
            wireguard.current_peers(self.ifname),
            ifname=self.ifname,
            resolver=self.resolver,
        )
        # Rules first: a peer added below must never be forwarded unfiltered.
        nftables.apply_ruleset(self.netns, plan.ruleset)
        wireguard.apply_changes(self.ifname, plan.changes)
        routes = wireguard.set_routes(self.netns, self.ifname, plan.routes)
        reasons = [f"started wireguard-go for {self.ifname}"] if restarted else []
        reasons += [c.reason for c in plan.changes] + routes + [r.reason for r in plan.refused]
        return GatewayReport(restarted, tuple(reasons), plan.refused)

    def stop(self) -> None:
        """Remove the interface (its wireguard-go stops) and the gateway's table."""
        wireguard.delete_interface(self.netns, self.ifname)
        nftables.apply_ruleset(self.netns, f"table inet {TABLE}\ndelete table inet {TABLE}\n")
