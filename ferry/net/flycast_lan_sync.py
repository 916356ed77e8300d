"""Apply Flycast over the LAN (``ferry.net.flycast_lan``) on a host or an edge.

One level-triggered cycle per mesh snapshot, called by the mesh loop
(``ferry.agent.mesh_loop.MeshLoop``) right before the WireGuard sync, so a
Flycast /80 has a route over the LAN before it leaves the edge's allowed IPs:

- ``HostFlycastLan.sync``: the host's link-local address on its LAN interface,
  and the Flycast /80s via its edge's link-local address when that edge is on
  the LAN (``gateway`` in the report: the mesh then leaves the /80s out of the
  edge's allowed IPs); else no such routes, and WireGuard carries Flycast.
- ``EdgeFlycastLan.sync``: the edge's link-local address, the MAC address of
  each LAN host (resolved by one ping when the neighbour table has none), the
  reply routes in ``REPLY_TABLE``, the ``fwmark`` rule and the nftables table.

Every route this module makes carries ``proto ROUTE_PROTO``: a cycle reads
those, adds what is missing and removes what is not wanted any more (after
a restart too). Blocking (execs ``ip``, ``ping``, ``nft``): run it off the
event loop. A host that cannot put its link-local address on its LAN interface
(IPv6 disabled there) removes its LAN routes and reports ``gateway`` None:
Flycast stays on WireGuard. Any other failure raises ``NetworkError``; the
mesh loop logs it and keeps Flycast in the edge's allowed IPs.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ferry.errors import NetworkError
from ferry.model.mesh import MeshSnapshot
from ferry.net import iproute, nftables
from ferry.net.flycast_lan import (
    REPLY_MARK,
    REPLY_PRIORITY,
    REPLY_TABLE,
    ROUTE_METRIC,
    ROUTE_PROTO,
    LanHost,
    LanLink,
    edge_address,
    edge_lan_hosts,
    edge_routes,
    edge_ruleset,
    host_gateway,
    host_routes,
    lan_link,
)

__all__ = ["EdgeFlycastLan", "EdgeLanView", "FlycastLanReport", "HostFlycastLan"]

PING_TIMEOUT_SECONDS = 1


@dataclass(frozen=True)
class FlycastLanReport:
    gateway: ipaddress.IPv6Address | None
    """A host's next hop for Flycast over the LAN; None: WireGuard (and always on an edge)."""
    reasons: tuple[str, ...]
    retry: bool = False
    """Something could not be done yet (a LAN host's MAC address): sync again soon."""


@dataclass(frozen=True)
class HostFlycastLan:
    """A host's side. ``endpoint``: its mesh endpoint ``ip:port`` (finds the LAN link)."""

    endpoint: str | None
    node_id: str
    netns: str | None = None

    def sync(self, snapshot: MeshSnapshot, serves: Mapping[str, str | None]) -> FlycastLanReport:
        link = _own_link(self.netns, self.endpoint)
        gateway = host_gateway(snapshot, serves.get(self.node_id), link)
        reasons: list[str] = []
        if gateway is not None:
            try:
                reasons += _ensure_link_local(self.netns, link)
            except NetworkError as exc:  # e.g. IPv6 disabled on the LAN interface
                reasons.append(f"flycast: stays on WireGuard: {exc}")
                gateway = None
        edge = edge_address(snapshot, serves.get(self.node_id))
        want = host_routes(snapshot.flycast, gateway, link.ifname if link else "", edge)
        reasons += _set_routes(self.netns, want, table=None)
        return FlycastLanReport(gateway, tuple(reasons))


class EdgeLanView:
    """What the edge's event loop reads of its LAN, written by the mesh thread: the LAN
    hosts whose MAC address the edge's checks know (``hosts``), and the edge's own mesh
    address (``source``). Each attribute is replaced whole, never changed in place."""

    def __init__(self) -> None:
        self.hosts: tuple[LanHost, ...] = ()
        self.source: ipaddress.IPv6Address | None = None


@dataclass(frozen=True)
class EdgeFlycastLan:
    """An edge's side: ``node_id`` is ``edge-<region>``, ``endpoint`` its mesh endpoint;
    ``view`` (if any) gets the LAN hosts each cycle has checked."""

    endpoint: str | None
    node_id: str
    netns: str | None = None
    view: EdgeLanView | None = None

    def sync(self, snapshot: MeshSnapshot, serves: Mapping[str, str | None]) -> FlycastLanReport:
        link = _own_link(self.netns, self.endpoint)
        reasons = _ensure_link_local(self.netns, link) if link is not None else []
        hosts = edge_lan_hosts(snapshot, self.node_id, link, serves)
        if link is not None and hosts:
            macs = _neighbours(self.netns, link.ifname)
            missing = [h.address for h in hosts if h.address not in macs]
            for address in missing:
                _ping(self.netns, address)
            if missing:
                macs = _neighbours(self.netns, link.ifname)
            hosts = edge_lan_hosts(snapshot, self.node_id, link, serves, macs)
            reasons += [f"flycast: no MAC address for {h.node_id} yet" for h in hosts if not h.mac]
        want = edge_routes(hosts, link.ifname) if link is not None else set()
        reasons += _set_routes(self.netns, want, table=REPLY_TABLE)
        reasons += _ensure_reply_rule(self.netns)
        nftables.apply_ruleset(self.netns, edge_ruleset(snapshot.flycast, hosts))
        if self.view is not None:
            own = edge_address(snapshot, self.node_id)
            self.view.source = ipaddress.IPv6Address(own) if own else None
            self.view.hosts = tuple(h for h in hosts if h.mac and h.prefixes)
        return FlycastLanReport(None, tuple(reasons), retry=any(not h.mac for h in hosts))


def _own_link(netns: str | None, endpoint: str | None) -> LanLink | None:
    return lan_link(iproute.ip("-j", "-4", "addr", "show", netns=netns), endpoint)


def _ensure_link_local(netns: str | None, link: LanLink | None) -> list[str]:
    """Give ``link`` its link-local address (``nodad``: usable at once). Idempotent."""
    if link is None:
        return []
    have = iproute.ip("-j", "-6", "addr", "show", "dev", link.ifname, netns=netns)
    owned = {a.get("local") for i in json.loads(have or "[]") for a in i.get("addr_info", [])}
    if str(link.link_local) in owned:
        return []
    iproute.ip(
        "-6", "addr", "replace", f"{link.link_local}/64", "dev", link.ifname, "nodad",
        netns=netns,
    )  # fmt: skip
    return [f"flycast: {link.link_local} on {link.ifname}"]


def _set_routes(netns: str | None, want: set[str], *, table: int | None) -> list[str]:
    """Make the ``ROUTE_PROTO`` routes (of ``table``, else main) exactly ``want``."""
    where = ["table", str(table)] if table is not None else []
    # check=False: a table that holds no route yet does not exist (ip fails): nothing to read.
    out = iproute.ip(
        "-6", "-j", "route", "show", "proto", str(ROUTE_PROTO), *where, netns=netns, check=False
    )  # fmt: skip
    try:
        listed = json.loads(out or "[]")
    except ValueError:  # ip printed "[" and then failed: the table does not exist yet
        listed = []
    have = {_route_spec(r) for r in listed}
    tail = f"proto {ROUTE_PROTO} metric {ROUTE_METRIC} " + " ".join(where)
    lines = [f"route replace {r} {tail}" for r in sorted(want - have)]
    lines += [f"route del {r} {tail}" for r in sorted(have - want)]
    iproute.ip_batch(lines, netns=netns)
    return [f"flycast: route {r}" for r in sorted(want - have)] + [
        f"flycast: no route {r}" for r in sorted(have - want)
    ]


def _route_spec(route: Mapping[str, object]) -> str:
    dst = str(route.get("dst", ""))
    if "/" not in dst:
        dst += "/128"
    return f"{ipaddress.IPv6Network(dst)} via {route.get('gateway')} dev {route.get('dev')}"


def _ensure_reply_rule(netns: str | None) -> list[str]:
    rules = iproute.ip("-6", "-j", "rule", "show", "pref", str(REPLY_PRIORITY), netns=netns)
    if json.loads(rules or "[]"):
        return []
    iproute.ip(
        "-6", "rule", "add", "fwmark", f"{REPLY_MARK:#x}", "lookup", str(REPLY_TABLE),
        "pref", str(REPLY_PRIORITY), netns=netns,
    )  # fmt: skip
    return [f"flycast: answers marked {REPLY_MARK:#x} use table {REPLY_TABLE}"]


def _neighbours(netns: str | None, ifname: str) -> dict[ipaddress.IPv4Address, str]:
    """IPv4 → MAC address of the neighbours on ``ifname`` the kernel has resolved."""
    out = iproute.ip("-j", "-4", "neigh", "show", "dev", ifname, netns=netns)
    found = {}
    for entry in json.loads(out or "[]"):
        states: Sequence[str] = entry.get("state", [])
        if entry.get("lladdr") and not {"FAILED", "INCOMPLETE"} & set(states):
            found[ipaddress.IPv4Address(entry["dst"])] = str(entry["lladdr"])
    return found


def _ping(netns: str | None, address: ipaddress.IPv4Address) -> None:
    """One echo request: makes the kernel resolve ``address``'s MAC address (ARP)."""
    argv = ["ping", "-c", "1", "-q", "-W", str(PING_TIMEOUT_SECONDS), str(address)]
    if netns:
        argv = iproute.netns_exec_argv(netns, argv)
    subprocess.run(argv, capture_output=True, check=False, timeout=PING_TIMEOUT_SECONDS + 5)
