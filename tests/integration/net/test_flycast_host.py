"""Flycast's host path with real namespaces and nftables: a host and two of its machines.

Namespaces made and removed by the test (unique names per run)::

    host ns: forwarding on, fe80::1 on each machine's link, a route per machine
      ├── machine c: the client, its 6PN address, fdaa::/16 via fe80::1
      └── machine m: the target, its 6PN address, a TCP server on 5433

The Flycast address has no route in the host: a connection to it reaches the
target only through the host's DNAT (``table ip6 ferry_flycast_host``).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ferry.net import sixpn
from ferry.net.flycast import flycast_address
from ferry.net.flycast_fast import FastPort
from ferry.net.flycast_host import TABLE, alive_refresh, host_ruleset
from ferry.net.iproute import add_netns, delete_netns, ip_batch, set_sysctl
from ferry.net.nftables import apply_ruleset

ORG = 0x6
FLYCAST = flycast_address(ORG, 1)
CLIENT = sixpn.machine_address(ORG, 1, 1)
TARGET = sixpn.machine_address(ORG, 1, 2)
STRANGER = sixpn.machine_address(ORG + 1, 1, 3)

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5433)); s.listen()
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode()); c.close()
"""


@dataclass(frozen=True)
class Lab:
    host: str
    client: str
    target: str


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"fh{secrets.token_hex(3)}"
    made = Lab(f"{tag}-h", f"{tag}-c", f"{tag}-m")
    server: subprocess.Popen[str] | None = None
    try:
        add_netns(made.host)
        set_sysctl(made.host, "net.ipv6.conf.all.forwarding", "1")
        for name, netns, addresses in (
            ("vc", made.client, (CLIENT, STRANGER)),
            ("vm", made.target, (TARGET,)),
        ):
            add_netns(netns)
            ip_batch(
                [f"link add {name} type veth peer name eth0 netns {netns}",
                 f"link set {name} up", f"addr add fe80::1/64 dev {name} nodad",
                 *(f"route add {a}/128 dev {name}" for a in addresses)],
                netns=made.host,
            )  # fmt: skip
            ip_batch(
                ["link set lo up", "link set eth0 up",
                 *(f"addr add {a}/128 dev eth0 nodad" for a in addresses),
                 "route add fdaa::/16 via fe80::1 dev eth0"],
                netns=netns,
            )  # fmt: skip
        server = subprocess.Popen(
            ["ip", "netns", "exec", made.target, sys.executable, "-c", SERVER],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield made
    finally:
        if server is not None:
            server.kill()
            server.wait(timeout=10)
        for netns in (made.host, made.client, made.target):
            delete_netns(netns)


def _connect(lab: Lab, source: ipaddress.IPv6Address, netns: str | None = None) -> str:
    """What the client gets from [FLYCAST]:5432 (the peer address the server saw), or
    the error's name."""
    script = (
        "import socket\n"
        "try:\n"
        f"    s = socket.create_connection(({str(FLYCAST)!r}, 5432), timeout=3,"
        f" source_address=({str(source)!r}, 0))\n"
        "    print(s.recv(100).decode(), s.getpeername()[0])\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    done = subprocess.run(
        ["ip", "netns", "exec", netns or lab.client, sys.executable, "-c", script],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


def _alive(lab: Lab) -> str:
    shown = subprocess.run(
        ["ip", "netns", "exec", lab.host, "nft", "list", "set", "ip6", TABLE, "alive"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return shown.stdout


PORT = FastPort(FLYCAST, 5432, sixpn.org_prefix(ORG), (TARGET,), 5433, "db")


def test_the_host_sends_its_machines_connection_to_the_target_itself(lab: Lab) -> None:
    assert _connect(lab, CLIENT) in ("OSError", "TimeoutError")  # no route without the rule
    apply_ruleset(lab.host, host_ruleset([PORT], alive_seconds=60))
    seen_by_server, peer = _connect(lab, CLIENT).split()
    assert seen_by_server == str(CLIENT)  # the machine sees the client's own address
    assert peer == str(FLYCAST)  # the client, the Flycast address
    # Another organization's source is not forwarded (its host would drop it anyway).
    assert _connect(lab, STRANGER) in ("OSError", "TimeoutError")
    # Nor the target's own connection (the edge's, which can NAT its answer back).
    assert _connect(lab, TARGET, netns=lab.target) in ("OSError", "TimeoutError")
    assert _forwarded(lab) == 1
    # The agent's renewal keeps the rule and its count of connections.
    apply_ruleset(lab.host, alive_refresh([PORT], alive_seconds=60))
    assert _connect(lab, CLIENT).split()[0] == str(CLIENT)
    assert _forwarded(lab) == 2


def _forwarded(lab: Lab) -> int:
    shown = subprocess.run(
        ["ip", "netns", "exec", lab.host, "nft", "list", "chain", "ip6", TABLE, "to_local"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    found = re.search(r"counter packets (\d+)", shown.stdout)
    assert found, shown.stdout
    return int(found.group(1))


def test_a_rule_not_loaded_again_stops_matching(lab: Lab) -> None:
    """An agent killed with kill -9 cannot empty the table: its rules expire."""
    apply_ruleset(lab.host, host_ruleset([PORT], alive_seconds=1))
    assert _connect(lab, CLIENT).split()[0] == str(CLIENT)
    deadline = time.monotonic() + 10
    while str(FLYCAST) in _alive(lab):  # the kernel's timer, not ours
        assert time.monotonic() < deadline, _alive(lab)
        time.sleep(0.1)
    assert _connect(lab, CLIENT) in ("OSError", "TimeoutError")
