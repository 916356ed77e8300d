"""Flycast over the LAN with real routes and nftables: an edge and two hosts on a bridge.

Namespaces made and removed by the test (unique names per run)::

    edge ns: bridge edge0 10.202.99.1/24, the Flycast address (AnyIP on lo), and
             mesh0, a veth standing for WireGuard (fdaa::/16 routed to it)
      ├── host h: eth0 10.202.99.10, a "machine" 6PN address on its lo
      └── host g: eth0 10.202.99.11, another host of the LAN

The kernel answers ICMP echo on the edge's AnyIP address, which is enough to
see which way packets go and which the edge drops.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from ferry.agent.mesh_loop import flycast_edges
from ferry.cluster.topology import switch_without_netfilter
from ferry.model.mesh import MeshNode, MeshNodeKind, MeshSnapshot
from ferry.net import sixpn
from ferry.net.flycast import flycast_address, flycast_prefix
from ferry.net.flycast_fast import FastPort, fast_ruleset
from ferry.net.flycast_lan_sync import EdgeFlycastLan, EdgeLanView, HostFlycastLan
from ferry.net.iproute import add_netns, delete_netns, ip, ip_batch, set_sysctl
from ferry.net.nftables import apply_ruleset

ORG = 0x5
FLYCAST = flycast_address(ORG, 1)
EDGE_ENDPOINT = "10.202.99.1:51821"


@dataclass(frozen=True)
class Lab:
    edge: str
    hosts: dict[str, str]  # host id -> namespace

    def machine(self, host_number: int) -> ipaddress.IPv6Address:
        return sixpn.machine_address(ORG, host_number, 1)


def _node(node_id: str, kind: MeshNodeKind, endpoint: str, prefixes: list[str]) -> MeshNode:
    return MeshNode(
        id=node_id, kind=kind, region="ams", public_key="K" * 43 + "=", endpoint=endpoint,
        address=prefixes[0].split("/")[0], allowed_ips=prefixes,
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip


def _snapshot(*hosts: int, edge: bool = True) -> MeshSnapshot:
    nodes = [
        _node(f"ams-{n}", MeshNodeKind.HOST, f"10.202.99.{9 + n}:51820",
              [str(ipaddress.IPv6Network(f"{sixpn.machine_address(ORG, n, 1)}/112", strict=False))])
        for n in hosts
    ]  # fmt: skip
    if edge:
        nodes.append(_node("edge-ams", MeshNodeKind.EDGE, EDGE_ENDPOINT, ["fdaa::a:0:0:1/128"]))
    return MeshSnapshot(version=1, nodes=nodes, flycast=[str(flycast_prefix(ORG))])


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"fl{secrets.token_hex(3)}"
    made = Lab(f"{tag}-e", {"ams-1": f"{tag}-1", "ams-2": f"{tag}-2"})
    try:
        add_netns(made.edge)
        ip_batch(
            [
                "link add edge0 type bridge",
                "addr add 10.202.99.1/24 dev edge0",
                "link set edge0 up",
                f"route add local {FLYCAST}/128 dev lo",
                # The mesh: an edge routes every host's prefixes through WireGuard.
                "link add mesh0 type veth peer name mesh1",
                "link set mesh1 up",
                "link set mesh0 up",
                "route add fdaa::/16 dev mesh0",
            ],
            netns=made.edge,
        )
        switch_without_netfilter(made.edge)  # as the embedded cluster's region bridge
        for n, netns in enumerate(made.hosts.values(), start=1):
            add_netns(netns)
            set_sysctl(netns, "net.ipv6.conf.all.forwarding", "1")
            ip_batch(
                [f"link add h{n} type veth peer name eth0 netns {netns}",
                 f"link set h{n} master edge0 up"],
                netns=made.edge,
            )  # fmt: skip
            ip_batch(
                [f"addr add 10.202.99.{9 + n}/24 dev eth0", "link set eth0 up",
                 f"addr add {made.machine(n)}/128 dev lo"],
                netns=netns,
            )  # fmt: skip
        yield made
    finally:
        for netns in (made.edge, *made.hosts.values()):
            delete_netns(netns)


def _ping(netns: str, source: ipaddress.IPv6Address) -> bool:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-q", "-c", "2", "-i", "0.2", "-W", "1",
         "-s", "1200", "-I", str(source), str(FLYCAST)],
        capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    return done.returncode == 0


def _tx_bytes(netns: str, ifname: str) -> int:
    shown = ip("-j", "-s", "link", "show", "dev", ifname, netns=netns)
    return int(json.loads(shown)[0]["stats64"]["tx"]["bytes"])


def _dropped(netns: str) -> int:
    shown = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "chain", "inet", "ferry_flycast", "from_lan"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"counter packets (\d+) bytes \d+ drop", shown.stdout)
    assert found, shown.stdout
    return int(found.group(1))


def _sync(lab: Lab, snapshot: MeshSnapshot) -> tuple[tuple[str, ...], ...]:
    serves = flycast_edges(snapshot)
    reports = [
        HostFlycastLan(f"10.202.99.{9 + n}:51820", host_id, netns).sync(snapshot, serves)
        for n, (host_id, netns) in enumerate(lab.hosts.items(), start=1)
    ]
    reports.append(EdgeFlycastLan(EDGE_ENDPOINT, "edge-ams", lab.edge).sync(snapshot, serves))
    return tuple(r.reasons for r in reports)


def test_lan_hosts_reach_flycast_over_the_lan_and_cannot_borrow_each_others_sources(
    lab: Lab,
) -> None:
    h1, h2 = lab.hosts["ams-1"], lab.hosts["ams-2"]
    first = _sync(lab, _snapshot(1, 2))
    assert all(first), first  # addresses, routes, rule: something was done everywhere
    assert _sync(lab, _snapshot(1, 2)) == ((), (), ())  # level-triggered: nothing more
    mesh = _tx_bytes(lab.edge, "mesh0")
    assert _ping(h1, lab.machine(1)) and _ping(h2, lab.machine(2))
    # The four 1200-byte answers went back over the LAN (the mesh sees only its own ND).
    assert _tx_bytes(lab.edge, "mesh0") - mesh < 1200
    route = ip("-6", "route", "get", str(FLYCAST), "from", str(lab.machine(1)), netns=h1)
    assert "dev eth0" in route and "fe80::aca:6301" in route  # the edge's link-local
    dropped = _dropped(lab.edge)
    ip("addr", "add", f"{lab.machine(2)}/128", "dev", "lo", "nodad", netns=h1)
    assert not _ping(h1, lab.machine(2))  # ams-2's source from ams-1's link
    assert _dropped(lab.edge) >= dropped + 2


def test_a_host_leaving_the_lan_or_the_snapshot_loses_its_lan_routes(lab: Lab) -> None:
    h1 = lab.hosts["ams-1"]
    _sync(lab, _snapshot(1, 2))
    assert _ping(h1, lab.machine(1))
    gone = _snapshot(2)  # ams-1 gone from the mesh: the edge forgets it
    EdgeFlycastLan(EDGE_ENDPOINT, "edge-ams", lab.edge).sync(gone, flycast_edges(gone))
    assert "fe80::aca:630a" not in ip("-6", "route", "show", "table", "all", netns=lab.edge)
    dropped = _dropped(lab.edge)
    assert not _ping(h1, lab.machine(1))  # and drops its packets: no longer a LAN host
    assert _dropped(lab.edge) >= dropped + 2
    _sync(lab, _snapshot(1, 2, edge=False))  # no edge on the LAN: hosts keep WireGuard
    assert "proto 241" not in ip("-6", "route", "show", netns=h1)


_ECHO_PEER = """
import socket, sys
server = socket.socket(socket.AF_INET6)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 7001))
server.listen()
print("ready", flush=True)
conn, peer = server.accept()
conn.sendall(peer[0].encode())
conn.close()
"""

_ASK = """
import socket, sys
conn = socket.create_connection((sys.argv[1], 7000), timeout=5)
print(conn.getpeername()[0], conn.recv(200).decode())
"""


@pytest.mark.parametrize("client_host", ["ams-2", "ams-1"])
def test_the_edges_kernel_forwards_a_fast_port_over_the_lan_from_its_own_address(
    lab: Lab, client_host: str
) -> None:
    """``ferry.net.flycast_fast``: a connection to the Flycast address's fast port reaches
    the machine on ams-1 from the edge's mesh address, the client (on another host, or
    the machine's own: back out of the bridge port it came in by) sees the Flycast
    address answer, and both ways cross the LAN, not the mesh."""
    view = EdgeLanView()
    snapshot = _snapshot(1, 2)
    _sync(lab, snapshot)
    EdgeFlycastLan(EDGE_ENDPOINT, "edge-ams", lab.edge, view=view).sync(
        snapshot, flycast_edges(snapshot)
    )
    assert view.source == ipaddress.IPv6Address("fdaa::a:0:0:1")
    assert {h.node_id for h in view.hosts} == {"ams-1", "ams-2"}
    fast = FastPort(FLYCAST, 7000, sixpn.org_prefix(ORG), (lab.machine(1),), 7001, "db")
    set_sysctl(lab.edge, "net.ipv6.conf.all.forwarding", "1")
    apply_ruleset(lab.edge, fast_ruleset([fast], view.source))
    mesh = _tx_bytes(lab.edge, "mesh0")
    server = subprocess.Popen(
        ["ip", "netns", "exec", lab.hosts["ams-1"], sys.executable, "-c", _ECHO_PEER,
         str(lab.machine(1))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        asked = subprocess.run(
            ["ip", "netns", "exec", lab.hosts[client_host], sys.executable, "-c", _ASK,
             str(FLYCAST)],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    finally:
        server.kill()
        server.wait(timeout=10)
    assert asked.stdout.split() == [str(FLYCAST), "fdaa::a:0:0:1"], asked.stdout + asked.stderr
    assert _tx_bytes(lab.edge, "mesh0") - mesh < 1200
    assert "packets 1 " in ip("netns", "exec", lab.edge, "nft", "list", "chain", "ip6",
                              "ferry_flycast_fast", "to_machines")  # fmt: skip
