"""A developer's WireGuard peer for real: `ferry wireguard create` against a real control
plane writes the config, a "gateway" namespace runs wireguard-go configured by
``PeerGateway`` from what the control plane tells the edge, and a "client" namespace
brings the config up with the real `wg-quick up`. Behind the gateway sit a machine of
the peer's organization and one of another organization: the client reaches its own
over TCP and nothing else, even after widening its own AllowedIPs; `wg-quick down`
cleans up. Namespaces, daemons and files are removed, also on failure.

`DNS =` is stripped from the config before `wg-quick up`: wg-quick hands it to
`resolvconf`, which is not installed here. The client asks that address itself
(dnspython): the gateway forwards it to the real ``.internal`` resolver (Ferry's
``dns_server``, run in the gateway namespace at fdaa::3), which answers the peer's
organization's names, the peer's own ``<name>._peer.internal`` included.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bench.mesh_lab import ECHO_CLIENT, ECHO_SERVER
from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient
from ferry.net import iproute, sixpn, wireguard
from ferry.net.dns_server import save_records
from ferry.net.internal_records import InternalRecords, MachineRecord
from ferry.net.peer_gateway import GatewayPeer, PeerGateway, gateway_interface_name

from ...served_app import served_control_plane

ADMIN = "wg-peer-admin-token"
UNDERLAY = ("192.0.2.1", "192.0.2.2")  # gateway, client: TEST-NET-1 inside the test only
MESH_PORT = 51820
PORT = 7100
ASK = """
import sys, dns.message, dns.query
answer = dns.query.udp(dns.message.make_query(sys.argv[2], "AAAA"), sys.argv[1], timeout=3)
print(" ".join(sorted(rd.address for rrset in answer.answer for rd in rrset)))
"""


@dataclass(frozen=True)
class Lab:
    scope: str
    gateway: str
    client: str
    ours: str  # the machine of the peer's organization
    theirs: str  # a machine of another organization

    @property
    def all(self) -> tuple[str, ...]:
        return (self.gateway, self.client, self.ours, self.theirs)


@pytest.fixture
def lab() -> Iterator[Lab]:
    scope = "p" + secrets.token_hex(3)[:5]
    made = Lab(scope, f"{scope}-gw", f"{scope}-cl", f"{scope}-m1", f"{scope}-m2")
    try:
        for netns in made.all:
            iproute.add_netns(netns)
        iproute.ip(
            "link", "add", f"{scope}u1", "netns", made.gateway,
            "type", "veth", "peer", "name", f"{scope}u2", "netns", made.client,
        )  # fmt: skip
        for netns, link, address in (
            (made.gateway, f"{scope}u1", UNDERLAY[0]),
            (made.client, f"{scope}u2", UNDERLAY[1]),
        ):
            # IPv4 only between client and gateway: 6PN can only ride the tunnel.
            iproute.set_sysctl(netns, f"net.ipv6.conf.{link}.disable_ipv6", "1")
            iproute.ip_batch(
                [f"addr add {address}/30 dev {link}", f"link set {link} up"], netns=netns
            )
        # The gateway's own 6PN address (an edge's, network 0): no peer may reach it.
        iproute.ip("addr", "add", f"{sixpn.infra_address(1)}/128", "dev", "lo", netns=made.gateway)
        yield made
    finally:
        for netns in made.all:
            iproute.delete_netns(netns)


def attach_machine(lab: Lab, netns: str, machine: sixpn.SixpnAddress, n: int) -> None:
    """A machine's veth behind the gateway, as a host would route it."""
    outside, gateway = f"{lab.scope}v{n}", machine.prefix[1]
    iproute.ip(
        "link", "add", outside, "netns", lab.gateway,
        "type", "veth", "peer", "name", "eth0", "netns", netns,
    )  # fmt: skip
    iproute.ip_batch(
        [f"addr add {gateway}/112 dev {outside} nodad", f"link set {outside} up"],
        netns=lab.gateway,
    )
    iproute.ip_batch(
        [
            f"addr add {machine.address}/112 dev eth0 nodad",
            "link set eth0 up",
            f"route add default via {gateway} dev eth0",
        ],
        netns=netns,
    )


@contextlib.contextmanager
def echo_server(netns: str, address: str) -> Iterator[None]:
    argv = iproute.netns_exec_argv(netns, [sys.executable, "-c", ECHO_SERVER, address, str(PORT)])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=5)


def reaches(netns: str, address: str, timeout: float = 3.0) -> bool:
    """Whether 64 KiB sent from ``netns`` to ``address``'s echo server come back intact."""
    argv = [sys.executable, "-c", ECHO_CLIENT, address, str(PORT), str(65536), str(timeout)]
    try:
        proc = subprocess.run(
            iproute.netns_exec_argv(netns, argv), capture_output=True, timeout=timeout + 5
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def resolve(netns: str, server: str, name: str) -> str:
    """The AAAA addresses ``name`` has, asked from ``netns`` to ``server`` (or the error)."""
    argv = iproute.netns_exec_argv(netns, [sys.executable, "-c", ASK, server, name])
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    return proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]


@contextlib.contextmanager
def internal_dns(netns: str, copy: Path, records: InternalRecords) -> Iterator[None]:
    """Ferry's ``.internal`` resolver at fdaa::3:53 in ``netns``, serving ``records``."""
    save_records(copy, records)
    iproute.ip("addr", "add", f"{sixpn.DNS_ADDRESS}/128", "dev", "lo", "nodad", netns=netns)
    argv = [sys.executable, "-m", "ferry.net.dns_server", "--records", str(copy)]
    proc = subprocess.Popen(iproute.netns_exec_argv(netns, argv), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait(timeout=5)


def wg_quick(netns: str, action: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        iproute.netns_exec_argv(netns, ["wg-quick", action, str(config)]),
        capture_output=True,
        text=True,
        timeout=30,
    )


def member_and_edge(url: str, gateway_key: str) -> tuple[str, str]:
    """acme with its admin (whose token is returned), a host and the ams edge (gateway)."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
        made = http.post("/v1/orgs", json={"slug": "acme", "admin_email": "alice@acme.test"})
        invitation = made.json()["admin_invitation"]["invitation"]
        alice = http.post("/v1/invitations/accept", json={"invitation": invitation}).json()
        host = {"id": "ams-1", "region": "ams", "address": "10.0.0.2", "cpus": 2}
        body = {**host, "memory_mb": 1024, "machine_subnet": "10.1.0.0/24"}
        assert http.post("/v1/hosts", json=body).is_success
        edge = http.post("/v1/tokens", json={"kind": "edge", "region": "ams"}).json()["token"]
        announced = http.put(
            "/v1/edges/ams/mesh",
            json={"public_key": gateway_key, "endpoint": f"{UNDERLAY[0]}:{MESH_PORT}"},
            headers={"Authorization": f"Bearer {edge}"},
        )
        assert announced.is_success, announced.text
    return alice["token"], edge


def gateway_peers(client: FerryClient) -> list[GatewayPeer]:
    """What the edge configures: its region's peers, as the control plane lists them."""
    return [
        GatewayPeer(p.name, p.org_slug, p.public_key, p.prefix, p.org_prefix)
        for p in client.gateway_wireguard_peers("ams")
    ]


def test_a_peer_reaches_its_orgs_machine_and_nothing_else(lab: Lab, tmp_path: Path) -> None:
    key_file = tmp_path / "edge" / "wireguard" / "private.key"
    gateway = PeerGateway(
        ifname=gateway_interface_name(lab.scope, 1),
        key_file=key_file,
        listen_port=MESH_PORT + 1,
        netns=lab.gateway,
    )
    config = tmp_path / f"{lab.scope}c.conf"  # wg-quick names the interface after the file
    try:
        with served_control_plane(tmp_path / "plane", ADMIN) as url:
            alice, edge_token = member_and_edge(url, wireguard.ensure_key(key_file))
            state = CliState(client_factory=lambda: FerryClient(url, alice))
            made = CliRunner().invoke(
                cli_app, ["wireguard", "create", "acme", "ams", "laptop", str(config)], obj=state
            )
            assert made.exit_code == 0, made.output
            edge = FerryClient(url, edge_token)
            report = gateway.sync(gateway_peers(edge))
            assert report.refused == () and any(
                r.startswith("add acme/laptop") for r in report.reasons
            )

            text = config.read_text()
            org = ipaddress.IPv6Network(text.split("AllowedIPs = ")[1].split()[0])
            assert f"DNS = {org.network_address + 3}\n" in text
            config.write_text(
                "".join(line for line in text.splitlines(True) if not line.startswith("DNS"))
            )
            network = sixpn.parse(org.network_address).network
            ours, theirs = sixpn.SixpnAddress(network, 1, 1), sixpn.SixpnAddress(network + 1, 2, 1)
            attach_machine(lab, lab.ours, ours, 1)
            attach_machine(lab, lab.theirs, theirs, 2)

            up = wg_quick(lab.client, "up", config)
            assert up.returncode == 0, up.stderr
            peer = ipaddress.IPv6Address(text.split("Address = ")[1].split("/")[0])
            web = MachineRecord("m1", "web", network, "ams", "app", ours.address, True)
            records = InternalRecords([web], peers={network: {"laptop": peer}})
            with (
                internal_dns(lab.gateway, tmp_path / "internal-dns.json", records),
                echo_server(lab.ours, str(ours.address)),
                echo_server(lab.theirs, str(theirs.address)),
                echo_server(lab.gateway, str(sixpn.infra_address(1))),
            ):
                assert reaches(lab.client, str(ours.address)), "the peer cannot reach its machine"
                assert not reaches(lab.client, str(theirs.address), timeout=2)
                resolver = str(org.network_address + 3)
                assert resolve(lab.client, resolver, "web.internal") == str(ours.address)
                assert resolve(lab.client, resolver, "laptop._peer.internal") == str(peer)

                # A peer that widens its own AllowedIPs is still held to its organization.
                ifname = config.stem
                widened = f"{org},{theirs.prefix},{sixpn.infra_address(1)}/128"
                gw_key = wireguard.public_key(key_file)
                subprocess.run(
                    iproute.netns_exec_argv(
                        lab.client, ["wg", "set", ifname, "peer", gw_key, "allowed-ips", widened]
                    ),
                    check=True,
                )
                iproute.ip_batch(
                    [
                        f"route add {theirs.prefix} dev {ifname}",
                        f"route add {sixpn.infra_address(1)}/128 dev {ifname}",
                    ],
                    netns=lab.client,
                )
                assert not reaches(lab.client, str(theirs.address), timeout=2)
                assert not reaches(lab.client, str(sixpn.infra_address(1)), timeout=2)
                assert reaches(lab.client, str(ours.address))

                # Removed: the gateway drops the peer on its next cycle.
                gone = CliRunner().invoke(
                    cli_app, ["wireguard", "remove", "acme", "laptop"], obj=state
                )
                assert gone.exit_code == 0, gone.output
                after = gateway.sync(gateway_peers(edge))
                assert any(r.startswith("remove peer") for r in after.reasons)
                assert not reaches(lab.client, str(ours.address), timeout=2)

            down = wg_quick(lab.client, "down", config)
            assert down.returncode == 0, down.stderr
            assert not iproute.netns_has_link(lab.client, config.stem)
            assert not wireguard.daemon_pids(config.stem)
    finally:
        with contextlib.suppress(Exception):
            wg_quick(lab.client, "down", config)
        with contextlib.suppress(Exception):
            gateway.stop()
    assert not wireguard.daemon_pids(gateway.ifname)
