"""The WireGuard mesh between hosts, pure: desired peers + current peers → changes, routes.

Every host has one WireGuard interface; every other host is a peer of it,
with the 6PN prefixes that live on that host as its allowed IPs (its
machines' /112s and its own ``infra_address`` as a /128). ``plan_mesh``
compares what the control plane says the mesh should be (``MeshPeer``, one
per node, oldest node first) with what the interface has now (``WgPeer``, as
``wg show <if> dump`` reports it) and returns the changes to make, each with
a one-line reason, plus the routes the host needs through the interface.

Bad input is refused peer by peer, with a reason, and changes nothing for
that peer (a peer already configured keeps its current configuration):

- the host itself as a peer (its node id, public key or endpoint);
- a public key that is not 32 bytes of base64, an endpoint that is not a
  literal ``ip:port``, allowed IPs that are not 6PN CIDRs;
- a public key, an endpoint or allowed IPs that an earlier node of the list
  already has (the control plane lists nodes in the order they joined, so
  whoever had it first keeps it);
- allowed IPs overlapping the host's own prefixes, which stay local.

No I/O: ``ferry.net.wireguard`` applies the plan.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ferry.net.sixpn import SIXPN

__all__ = [
    "MeshPeer",
    "MeshPlan",
    "MeshSelf",
    "PeerChange",
    "Refusal",
    "WgPeer",
    "endpoint_error",
    "plan_mesh",
    "public_key_error",
]


@dataclass(frozen=True)
class MeshPeer:
    """One node of the mesh as the control plane announces it.

    ``endpoint`` is ``"ip:port"`` (``"[v6]:port"``), or None when the node
    cannot be dialled (behind NAT: it dials us, and should keep the path open
    with ``keepalive`` seconds of persistent keepalive; 0 is off).
    """

    node_id: str
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    keepalive: int = 0


@dataclass(frozen=True)
class MeshSelf:
    """The host planning its own interface: who it is and what stays local."""

    node_id: str
    public_key: str
    endpoint: str | None
    local_prefixes: tuple[str, ...]


@dataclass(frozen=True)
class WgPeer:
    """A peer as the interface has it now (``wg show <if> dump``)."""

    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    keepalive: int = 0
    latest_handshake: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class PeerChange:
    """One change to the interface; ``add`` and ``update`` carry the whole peer."""

    action: Literal["add", "update", "remove"]
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    keepalive: int
    reason: str


@dataclass(frozen=True)
class Refusal:
    node_id: str
    reason: str


@dataclass(frozen=True)
class MeshPlan:
    changes: tuple[PeerChange, ...]
    refused: tuple[Refusal, ...]
    routes: tuple[str, ...]
    """Every prefix routed through the interface once the changes are made
    (allowed IPs of every peer it keeps, collapsed), never a local one."""


def plan_mesh(me: MeshSelf, desired: Sequence[MeshPeer], current: Sequence[WgPeer]) -> MeshPlan:
    """The changes that make ``current`` match ``desired``, and the routes after them."""
    claims = _Claims()
    for prefix in me.local_prefixes:
        claims.claim(_network(prefix), "this host (local)")
    keys: dict[str, str] = {me.public_key: "this host"}
    endpoints: dict[str, str] = {me.endpoint: "this host"} if me.endpoint else {}
    accepted: list[tuple[MeshPeer, tuple[str, ...]]] = []
    refused: list[Refusal] = []
    seen: set[str] = set()
    for peer in desired:
        if peer.node_id in seen:
            refused.append(Refusal(peer.node_id, f"peer {peer.node_id} refused: listed twice"))
            continue
        seen.add(peer.node_id)
        problem, networks = _check(peer, me, keys, endpoints, claims)
        if problem:
            refused.append(Refusal(peer.node_id, f"peer {peer.node_id} refused: {problem}"))
            continue
        keys[peer.public_key] = peer.node_id
        if peer.endpoint:
            endpoints[peer.endpoint] = peer.node_id
        for net in networks:
            claims.claim(net, peer.node_id)
        accepted.append((peer, tuple(str(n) for n in networks)))

    now = {p.public_key: p for p in current}
    wanted = {peer.public_key for peer, _ in accepted}
    refused_ids = {r.node_id for r in refused}
    kept_as_is = {p.public_key for p in desired if p.node_id in refused_ids} - wanted
    changes: list[PeerChange] = []
    for peer, ips in accepted:
        changes.extend(_compare(peer, ips, now.get(peer.public_key)))
    for key in now:
        if key not in wanted and key not in kept_as_is:
            changes.append(
                PeerChange("remove", key, None, (), 0, f"remove {_short(key)}: not in the mesh")
            )
    routed: list[ipaddress.IPv6Network] = [_network(ip) for _, ips in accepted for ip in ips]
    for key in kept_as_is & now.keys():
        routed.extend(_network(ip) for ip in now[key].allowed_ips if _is_sixpn(ip))
    routes = tuple(str(n) for n in ipaddress.collapse_addresses(routed))
    return MeshPlan(tuple(changes), tuple(refused), routes)


def public_key_error(key: str) -> str | None:
    """Why ``key`` is not a WireGuard public key (base64 of 32 bytes), or None."""
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return f"public key {key[:12]!r}… is not base64"
    if len(raw) != 32:
        return f"public key is {len(raw)} bytes, WireGuard keys are 32"
    return None


def endpoint_error(endpoint: str) -> str | None:
    """Why ``endpoint`` is not a literal ``ip:port`` / ``[v6]:port``, or None."""
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"endpoint {endpoint!r} is not ip:port (port 1..65535)"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        version = 6
    else:
        version = 4
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return f"endpoint {endpoint!r} does not start with a literal IP address (no names)"
    if parsed.version != version:
        return f"endpoint {endpoint!r}: write IPv6 endpoints as [address]:port"
    return None


def _check(
    peer: MeshPeer,
    me: MeshSelf,
    keys: dict[str, str],
    endpoints: dict[str, str],
    claims: _Claims,
) -> tuple[str | None, list[ipaddress.IPv6Network]]:
    if peer.node_id == me.node_id:
        return "it is this host itself", []
    if problem := public_key_error(peer.public_key):
        return problem, []
    if owner := keys.get(peer.public_key):
        return f"its public key is already {owner}'s", []
    if peer.endpoint is not None:
        if problem := endpoint_error(peer.endpoint):
            return problem, []
        if owner := endpoints.get(peer.endpoint):
            return f"endpoint {peer.endpoint} is already {owner}'s", []
    if not 0 <= peer.keepalive <= 65535:
        return f"keepalive {peer.keepalive} is out of range 0..65535", []
    networks: list[ipaddress.IPv6Network] = []
    for text in peer.allowed_ips:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            return f"allowed IP {text!r} is not a CIDR with its host bits clear", []
        if not isinstance(net, ipaddress.IPv6Network) or not net.subnet_of(SIXPN):
            return f"allowed IP {text} is outside 6PN ({SIXPN})", []
        if owner := claims.owner_overlapping(net):
            return f"allowed IP {net} overlaps {owner}'s addresses", []
        networks.append(net)
    return None, networks


def _compare(peer: MeshPeer, ips: tuple[str, ...], old: WgPeer | None) -> list[PeerChange]:
    def change(action: Literal["add", "update"], reason: str) -> PeerChange:
        return PeerChange(action, peer.public_key, peer.endpoint, ips, peer.keepalive, reason)

    where = peer.endpoint or "no endpoint (it dials us)"
    if old is None:
        return [change("add", f"add {peer.node_id}: {where}, {len(ips)} prefixes")]
    what: list[str] = []
    if peer.endpoint is not None and peer.endpoint != old.endpoint:
        what.append(f"endpoint {old.endpoint or 'none'} → {peer.endpoint}")
    before = {str(_network(ip)) for ip in old.allowed_ips}
    if before != set(ips):
        added, gone = len(set(ips) - before), len(before - set(ips))
        what.append(f"allowed IPs +{added} -{gone}")
    if peer.keepalive != old.keepalive:
        what.append(f"keepalive {old.keepalive}s → {peer.keepalive}s")
    return [change("update", f"update {peer.node_id}: {', '.join(what)}")] if what else []


class _Claims:
    """Who holds which prefix; finds an overlap (one containing the other) in
    O(prefix length) per lookup instead of comparing every pair."""

    def __init__(self) -> None:
        self._exact: dict[tuple[int, int], str] = {}
        self._covering: dict[tuple[int, int], str] = {}  # every supernet of a claim

    def claim(self, net: ipaddress.IPv6Network, owner: str) -> None:
        value, length = int(net.network_address), net.prefixlen
        self._exact.setdefault((value, length), owner)
        for bits in range(length + 1):
            self._covering.setdefault((_mask(value, bits), bits), owner)

    def owner_overlapping(self, net: ipaddress.IPv6Network) -> str | None:
        """Who holds a prefix inside, equal to or containing ``net``, if anyone."""
        value, length = int(net.network_address), net.prefixlen
        inside = self._covering.get((value, length))
        if inside is not None:
            return inside
        for bits in range(length + 1):
            owner = self._exact.get((_mask(value, bits), bits))
            if owner is not None:
                return owner
        return None


def _mask(value: int, bits: int) -> int:
    return value & ~((1 << (128 - bits)) - 1) & ((1 << 128) - 1)


def _network(text: str) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(text, strict=False)


def _is_sixpn(text: str) -> bool:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return isinstance(net, ipaddress.IPv6Network) and net.subnet_of(SIXPN)


def _short(key: str) -> str:
    return f"peer {key[:8]}…"
