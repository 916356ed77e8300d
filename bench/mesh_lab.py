"""A two-host WireGuard mesh lab in network namespaces, for the mesh's test and benchmark.

Two "hosts" (``<scope>-h1``, ``<scope>-h2``) joined only by an IPv4 underlay
(one veth pair, IPv6 disabled on it: there is no IPv6 path between them but
the mesh), each with a "machine" namespace behind it (``<scope>-m1``,
``<scope>-m2``) holding a machine 6PN address in organization network 1,
routed by its host. Each host runs Ferry's ``HostMesh`` (wireguard-go).
Needs root. ``mesh_lab`` removes everything it made, also on failure.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ferry.net import iproute, wireguard
from ferry.net.mesh import MeshPeer
from ferry.net.mesh_sync import HostMesh, MeshReport
from ferry.net.sixpn import SixpnAddress

NETWORK = 1  # the organization of both machines
UNDERLAY = ("192.0.2.1", "192.0.2.2")  # TEST-NET-1, only inside the lab's namespaces
PORT = 51820


@dataclass(frozen=True)
class LabHost:
    number: int
    netns: str
    machine_netns: str
    machine: SixpnAddress
    underlay: str
    mesh: HostMesh

    @property
    def machine_address(self) -> str:
        return str(self.machine.address)

    @property
    def machine_prefix(self) -> str:
        return str(self.machine.prefix)


@dataclass
class MeshLab:
    scope: str
    hosts: tuple[LabHost, LabHost]

    def announce(self, host: LabHost) -> MeshPeer:
        return host.mesh.announce([host.machine_prefix])

    def sync(self, host: LabHost, *, with_peer: bool = True) -> MeshReport:
        """One mesh cycle of ``host``: the other host as its peer (or no peer)."""
        other = self.hosts[1] if host is self.hosts[0] else self.hosts[0]
        desired = [self.announce(other)] if with_peer else []
        return host.mesh.sync(desired, [host.machine_prefix])


def new_scope() -> str:
    """A unique 6-character name for one lab (namespaces, interfaces)."""
    return "m" + secrets.token_hex(3)[:5]


@contextlib.contextmanager
def mesh_lab(state_dir: Path, scope: str | None = None) -> Iterator[MeshLab]:
    """Build the lab (interfaces up, no peers yet); tear it all down on exit."""
    scope = scope or new_scope()
    hosts = tuple(_plan_host(scope, n, state_dir) for n in (1, 2))
    lab = MeshLab(scope, (hosts[0], hosts[1]))
    try:
        _build(lab)
        yield lab
    finally:
        _teardown(lab)


def _plan_host(scope: str, n: int, state_dir: Path) -> LabHost:
    netns = f"{scope}-h{n}"
    mesh = HostMesh(
        node_id=f"h{n}",
        host_number=n,
        ifname=wireguard.interface_name(scope, n),
        state_dir=state_dir / f"h{n}",
        netns=netns,
        endpoint=f"{UNDERLAY[n - 1]}:{PORT}",
    )
    machine = SixpnAddress(NETWORK, n, 1)
    return LabHost(n, netns, f"{scope}-m{n}", machine, UNDERLAY[n - 1], mesh)


def _build(lab: MeshLab) -> None:
    h1, h2 = lab.hosts
    for host in lab.hosts:
        iproute.add_netns(host.netns)
        iproute.add_netns(host.machine_netns)
    # The underlay: IPv4 only.
    iproute.ip(
        "link", "add", f"{lab.scope}u1", "netns", h1.netns,
        "type", "veth", "peer", "name", f"{lab.scope}u2", "netns", h2.netns,
    )  # fmt: skip
    for host, link in ((h1, f"{lab.scope}u1"), (h2, f"{lab.scope}u2")):
        iproute.set_sysctl(host.netns, f"net.ipv6.conf.{link}.disable_ipv6", "1")
        iproute.set_sysctl(host.netns, "net.ipv6.conf.all.forwarding", "1")
        iproute.ip_batch(
            [f"addr add {host.underlay}/30 dev {link}", f"link set {link} up"], netns=host.netns
        )
        _attach_machine(lab.scope, host)
        host.mesh.sync([], [host.machine_prefix])


def _attach_machine(scope: str, host: LabHost) -> None:
    """The machine's veth: ``eth0`` inside, the /112's ``:1`` on the host side."""
    outside = f"{scope}v{host.number}"
    gateway = host.machine.prefix[1]
    iproute.ip(
        "link", "add", outside, "netns", host.netns,
        "type", "veth", "peer", "name", "eth0", "netns", host.machine_netns,
    )  # fmt: skip
    iproute.ip_batch(
        [f"addr add {gateway}/112 dev {outside} nodad", f"link set {outside} up"],
        netns=host.netns,
    )
    iproute.ip_batch(
        [
            f"addr add {host.machine_address}/112 dev eth0 nodad",
            "link set eth0 up",
            f"route add default via {gateway} dev eth0",
        ],
        netns=host.machine_netns,
    )


def _teardown(lab: MeshLab) -> None:
    for host in lab.hosts:
        with contextlib.suppress(Exception):
            host.mesh.stop()
    for host in lab.hosts:
        iproute.delete_netns(host.machine_netns)
        iproute.delete_netns(host.netns)


ECHO_SERVER = """
import socket, sys
srv = socket.socket(socket.AF_INET6)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
"""

ECHO_CLIENT = """
import socket, sys
size = int(sys.argv[3])
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4])) as c:
    payload = bytes(range(256)) * (size // 256)
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    got = bytearray()
    while data := c.recv(65536):
        got += data
    sys.exit(0 if got == payload else 3)
"""


@contextlib.contextmanager
def echo_server(host: LabHost, port: int = 7000) -> Iterator[int]:
    """A TCP echo server on ``host``'s machine address; yields its port."""
    argv = iproute.netns_exec_argv(
        host.machine_netns, [sys.executable, "-c", ECHO_SERVER, host.machine_address, str(port)]
    )
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo server did not start")
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=5)


def echo(client: LabHost, server: LabHost, port: int, size: int, timeout: float = 3.0) -> bool:
    """Whether ``size`` bytes sent from ``client``'s machine to ``server``'s come back intact."""
    argv = iproute.netns_exec_argv(
        client.machine_netns,
        [sys.executable, "-c", ECHO_CLIENT, server.machine_address, str(port), str(size),
         str(timeout)],
    )  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout + 5, check=False)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0
