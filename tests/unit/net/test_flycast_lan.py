"""Flycast over the region's LAN, the pure part: who is on the LAN, which routes a host
and an edge want, the edge's source checks; and the mesh loop leaving the Flycast /80s
out of WireGuard exactly when the LAN carries them."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ferry.agent.mesh_loop import MeshLoop, flycast_edges
from ferry.errors import NetworkError
from ferry.model.mesh import MeshNode, MeshNodeKind, MeshSnapshot
from ferry.net.flycast import flycast_prefix
from ferry.net.flycast_lan import (
    LanHost,
    edge_lan_hosts,
    edge_routes,
    edge_ruleset,
    host_gateway,
    host_routes,
    lan_link,
    link_local,
)
from ferry.net.flycast_lan_sync import FlycastLanReport
from ferry.net.mesh import MeshPeer
from ferry.net.mesh_sync import MeshReport
from ferry.net.nftables import check_ruleset

FLYCAST = str(flycast_prefix(0x10))
MAC = "02:00:0a:01:10:0a"


def _node(node_id: str, kind: MeshNodeKind, endpoint: str, prefixes: list[str]) -> MeshNode:
    return MeshNode(
        id=node_id,
        kind=kind,
        region=node_id.split("-")[-1] if kind is MeshNodeKind.EDGE else node_id.split("-")[0],
        public_key="K" * 43 + "=",
        endpoint=endpoint,
        address=prefixes[0].split("/")[0],
        allowed_ips=prefixes,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


# ams: an edge and a host on the region's bridge; sin-remote: joined from another network,
# its endpoint beside the sin uplink (inside the region's /20, on no LAN of the edge).
SNAPSHOT = MeshSnapshot(
    version=7,
    nodes=[
        _node("ams-1", MeshNodeKind.HOST, "10.1.16.10:51820", ["fdaa::1:0:0:1/128"]),
        _node("ams-2", MeshNodeKind.HOST, "10.1.16.11:51820", ["fdaa:0:10:0:2::/112"]),
        _node("sin-remote", MeshNodeKind.HOST, "10.1.47.6:51820", ["fdaa:0:10:0:3::/112"]),
        _node("edge-ams", MeshNodeKind.EDGE, "10.1.16.1:51821", ["fdaa::a:0:0:1/128"]),
        _node("edge-sin", MeshNodeKind.EDGE, "10.1.32.1:51821", ["fdaa::b:0:0:1/128"]),
    ],
    flycast=[FLYCAST],
)


def _addresses(*links: tuple[str, str, str, int]) -> str:
    """``ip -j -4 addr show`` for (ifname, link_type, address, prefixlen) links."""
    return json.dumps(
        [
            {
                "ifname": name,
                "link_type": kind,
                "addr_info": [{"family": "inet", "local": local, "prefixlen": length}],
            }
            for name, kind, local, length in links
        ]
    )


EDGE_ADDRS = _addresses(
    ("lo", "loopback", "10.1.250.1", 32),
    ("uplink", "ether", "10.1.31.2", 30),
    ("edge0", "ether", "10.1.16.1", 24),
)


def test_a_node_finds_its_lan_link_by_the_address_of_its_mesh_endpoint() -> None:
    link = lan_link(EDGE_ADDRS, "10.1.16.1:51821")
    assert link is not None and link.ifname == "edge0"
    assert link.link_local == ipaddress.IPv6Address("fe80::a01:1001")
    assert link.on_link(ipaddress.IPv4Address("10.1.16.10"))
    assert not link.on_link(ipaddress.IPv4Address("10.1.47.6"))  # the remote host
    assert lan_link(EDGE_ADDRS, "10.9.9.9:51821") is None  # held by no interface
    assert lan_link(EDGE_ADDRS, "10.1.250.1:51821") is None  # loopback is no LAN
    assert lan_link(EDGE_ADDRS, None) is None


def test_a_host_sends_flycast_over_the_lan_only_to_an_edge_on_it() -> None:
    host = lan_link(_addresses(("eth0", "ether", "10.1.16.10", 24)), "10.1.16.10:51820")
    gateway = host_gateway(SNAPSHOT, "edge-ams", host)
    assert gateway == link_local(ipaddress.IPv4Address("10.1.16.1"))
    assert host_routes(SNAPSHOT.flycast, gateway, "eth0") == {
        f"{FLYCAST} via fe80::a01:1001 dev eth0"
    }
    # The remote host's own /30 holds no edge: WireGuard, as before (no routes).
    remote = lan_link(_addresses(("eth0", "ether", "10.1.47.6", 30)), "10.1.47.6:51820")
    assert host_gateway(SNAPSHOT, "edge-sin", remote) is None
    assert host_routes(SNAPSHOT.flycast, None, "eth0") == set()
    # An edge of another region (a host whose region has none) is not on the LAN either.
    assert host_gateway(SNAPSHOT, "edge-sin", host) is None


def test_the_edge_answers_its_lan_hosts_over_the_lan_and_checks_their_sources() -> None:
    link = lan_link(EDGE_ADDRS, "10.1.16.1:51821")
    serves = flycast_edges(SNAPSHOT)
    assert serves["sin-remote"] == "edge-sin" and serves["ams-1"] == "edge-ams"
    macs = {ipaddress.IPv4Address("10.1.16.10"): MAC}
    hosts = edge_lan_hosts(SNAPSHOT, "edge-ams", link, serves, macs)
    assert [(h.node_id, h.mac) for h in hosts] == [("ams-1", MAC), ("ams-2", None)]
    assert edge_routes(hosts, "edge0") == {
        "fdaa::1:0:0:1/128 via fe80::a01:100a dev edge0",
        "fdaa:0:10:0:2::/112 via fe80::a01:100b dev edge0",
    }
    sin = lan_link(_addresses(("edge0", "ether", "10.1.32.1", 24)), "10.1.32.1:51821")
    assert edge_lan_hosts(SNAPSHOT, "edge-sin", sin, serves) == ()  # remote: WireGuard

    rules = edge_ruleset(SNAPSHOT.flycast, hosts)
    check_ruleset(rules)  # nft itself accepts it
    assert f"elements = {{ {FLYCAST} }}" in rules
    assert f"ether saddr {MAC} ip6 saddr {{ fdaa::1:0:0:1/128 }} accept" in rules
    assert "fdaa:0:10:0:2::/112" not in rules  # no MAC yet: its packets are dropped
    chain = rules.split("chain from_lan {")[1].split("\n  }")[0]
    assert chain.strip().splitlines()[-1].strip().startswith("counter drop")
    check_ruleset(edge_ruleset([], []))  # no Flycast address yet, no LAN host


def test_host_routes_and_rules_are_empty_without_a_lan() -> None:
    host = LanHost("ams-1", ipaddress.IPv4Address("10.1.16.10"), ())
    assert edge_routes([host], "edge0") == set()
    assert "ether saddr" not in edge_ruleset([FLYCAST], [host])


class Interface:
    node_id = "ams-1"
    endpoint = "10.1.16.10:51820"

    def __init__(self) -> None:
        self.peers: list[list[MeshPeer]] = []

    def announce(self, local_prefixes: Sequence[str]) -> MeshPeer:
        return MeshPeer(self.node_id, "K" * 43 + "=", self.endpoint, ("fdaa::1:0:0:1/128",))

    def sync(self, desired: Sequence[MeshPeer], local_prefixes: Sequence[str]) -> MeshReport:
        self.peers.append(list(desired))
        return MeshReport(self.announce(local_prefixes), False, (), ())


class Lan:
    def __init__(self, gateway: str | None, fail: bool = False) -> None:
        self.gateway = ipaddress.IPv6Address(gateway) if gateway else None
        self.fail = fail

    def sync(self, snapshot: MeshSnapshot, serves: Mapping[str, str | None]) -> FlycastLanReport:
        if self.fail:
            raise NetworkError("IPv6 is disabled on eth0")
        return FlycastLanReport(self.gateway, ())


class Plane:
    def watch_mesh(self, since: int = 0, timeout: float = 30) -> MeshSnapshot:
        return SNAPSHOT


def _edge_carries_flycast(lan: Lan, tmp_path: Path) -> bool:
    interface = Interface()
    loop = MeshLoop(
        Plane(), lambda key, where: SNAPSHOT.nodes[0], interface, list,
        threading.Event(), tmp_path / "mesh.json", lan,
    )  # fmt: skip
    loop.sync_once()
    (edge,) = [p for p in interface.peers[-1] if p.node_id == "edge-ams"]
    return FLYCAST in edge.allowed_ips


def test_flycast_leaves_wireguard_only_when_the_lan_carries_it(tmp_path: Path) -> None:
    assert not _edge_carries_flycast(Lan("fe80::a01:1001"), tmp_path)
    assert _edge_carries_flycast(Lan(None), tmp_path)  # no edge on the LAN
    assert _edge_carries_flycast(Lan("fe80::a01:1001", fail=True), tmp_path)  # fallback
