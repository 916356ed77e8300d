"""A host with three machines, a remote host over a stand-in mesh link, and an edge.

Everything in namespaces the lab makes and removes (unique names per run)::

    edge ns ──uplink── host ns ──veth── a1 ns   (org A)
    10.X.16.1            │  ├───veth── a2 ns   (org A)
    198.18.0.1 (beyond)  │  └───veth── b1 ns   (org B)
                         └──"wg"── remote ns  (org A, org B and network-0 sources)

``mode``: ``bridged`` is today's host layout (``ferry.agent.network_hook``):
the machines' veths on a bridge holding the IPv4 gateway and ``fe80::1``, each
machine's 6PN /112 routed to the bridge, machines routing ``fdaa::/16`` via
``fe80::1``; ``routed`` gives each veth its own /32 and /112 (gateway ``…:1``)
instead, the layout a host without a bridge would have. The "wg" link is a
plain veth: the firewall's mesh rules care about the interface, not the
encryption. Servers in every namespace answer with their name.
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ferry.net import isolation, sixpn
from ferry.net.iproute import delete_netns, ip, ip_batch, set_sysctl

PROBE = str(Path(__file__).with_name("nsprobe.py"))
ORG_A, ORG_B = 0xA, 0xB
HOST, REMOTE_HOST = 1, 2
PORTS = (5001, 7777)
CONTROL_PORT = 7070
BRIDGE_GATEWAY6 = "fe80::1"  # network_hook.SIXPN_GATEWAY: the machines' 6PN next hop


@dataclass
class Machine:
    name: str
    network: int
    number: int
    ipv4: str

    @property
    def sixpn(self) -> ipaddress.IPv6Address:
        return sixpn.machine_address(self.network, HOST, self.number)

    @property
    def prefix6(self) -> ipaddress.IPv6Network:
        return sixpn.SixpnAddress(self.network, HOST, self.number).prefix

    @property
    def gateway6(self) -> ipaddress.IPv6Address:
        return sixpn.SixpnAddress(self.network, HOST, self.number).prefix[1]


@dataclass
class Lab:
    mode: str
    tag: str = field(default_factory=lambda: f"fi{secrets.token_hex(2)}")
    octet: int = field(default_factory=lambda: 100 + secrets.randbelow(100))
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    udp_log: Path = Path("/dev/null")

    def __post_init__(self) -> None:
        base = f"10.{self.octet}"
        self.cluster = ipaddress.ip_network(f"{base}.0.0/16")
        self.host_uplink, self.edge_address = f"{base}.16.10", f"{base}.16.1"
        self.control_plane = f"{base}.0.1"  # on the edge ns: another cluster address
        self.beyond = "198.18.0.1"
        self.machines = [
            Machine("a1", ORG_A, 1, f"{base}.1.2"),
            Machine("a2", ORG_A, 2, f"{base}.1.3"),
            Machine("b1", ORG_B, 3, f"{base}.1.4"),
        ]
        self.remote_a = sixpn.machine_address(ORG_A, REMOTE_HOST, 1)
        self.remote_b = sixpn.machine_address(ORG_B, REMOTE_HOST, 1)
        self.remote_infra = sixpn.infra_address(REMOTE_HOST)
        self.host_infra = sixpn.infra_address(HOST)

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def veth(self, name: str) -> str:
        return f"{self.tag}{name}"

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def wg(self) -> str:
        return f"{self.tag}wg"

    def machine(self, name: str) -> Machine:
        return next(m for m in self.machines if m.name == name)

    def isolation(self) -> isolation.HostIsolation:
        """What the agent would hand the renderer for this host."""
        return isolation.HostIsolation(
            machines=tuple(
                isolation.MachinePort(
                    self.veth(m.name), ipaddress.IPv4Address(m.ipv4), m.sixpn, m.network
                )
                for m in self.machines
            ),
            mesh_interfaces=(self.wg,),
            bridge=self.bridge if self.mode == "bridged" else None,
            edge_sources=(isolation.INFRA_PREFIX, ipaddress.ip_network(f"{self.edge_address}/32")),
            protected=(self.cluster, ipaddress.ip_network(f"{self.host_infra}/128")),
        )

    # -- building -----------------------------------------------------------

    def build(self, tmp: Path) -> None:
        for name in ("h", "e", "r", *(m.name for m in self.machines)):
            ip("netns", "add", self.ns(name))
            ip("link", "set", "lo", "up", netns=self.ns(name))
        host = self.ns("h")
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
            set_sysctl(host, key, "1")
        self._edge()
        self._remote()
        if self.mode == "bridged":
            ip_batch(
                [
                    f"link add {self.bridge} type bridge",
                    f"addr add 10.{self.octet}.1.1/24 dev {self.bridge}",
                    f"addr add {BRIDGE_GATEWAY6}/64 dev {self.bridge} nodad",
                    f"link set {self.bridge} up",
                ],
                netns=host,
            )
        for m in self.machines:
            self._machine(m)
        ip_batch(
            [f"addr add {sixpn.DNS_ADDRESS}/128 dev lo", f"addr add {self.host_infra}/128 dev lo"],
            netns=host,
        )
        self.udp_log = tmp / f"{self.tag}-udp.log"
        self.serve(
            "h",
            "host",
            tcp=[f"[::]:{CONTROL_PORT}", f"[{sixpn.DNS_ADDRESS}]:53"],
            udp=[f"[{sixpn.DNS_ADDRESS}]:53"],
        )
        self.serve(
            "e",
            "control-plane",
            tcp=[f"{self.control_plane}:{CONTROL_PORT}"],
            udp=[f"{self.beyond}:9999"],
        )
        self.serve("e", "beyond", tcp=[f"{self.beyond}:{PORTS[0]}"])
        self.serve("r", "remote", tcp=[f"[::]:{PORTS[0]}"])
        for m in self.machines:
            self.serve(m.name, m.name, tcp=[f"[::]:{p}" for p in PORTS])

    def _edge(self) -> None:
        host, edge = self.ns("h"), self.ns("e")
        ip(
            "link",
            "add",
            self.veth("up"),
            "type",
            "veth",
            "peer",
            "name",
            "up0",
            "netns",
            edge,
            netns=host,
        )
        ip_batch(
            [
                f"addr add {self.host_uplink}/24 dev {self.veth('up')}",
                f"link set {self.veth('up')} up",
                f"route add 198.18.0.0/15 via {self.edge_address}",
                f"route add 10.{self.octet}.0.0/24 via {self.edge_address}",
            ],
            netns=host,
        )
        ip_batch(
            [
                f"addr add {self.edge_address}/24 dev up0",
                "link set up0 up",
                f"addr add {self.beyond}/32 dev lo",
                f"addr add {self.control_plane}/32 dev lo",
                f"route add 10.{self.octet}.1.0/24 via {self.host_uplink}",
            ],
            netns=edge,
        )

    def _remote(self) -> None:
        host, remote = self.ns("h"), self.ns("r")
        ip(
            "link",
            "add",
            self.wg,
            "type",
            "veth",
            "peer",
            "name",
            "wg0",
            "netns",
            remote,
            netns=host,
        )
        ip_batch(
            [
                f"addr add fe80::1/64 dev {self.wg} nodad",
                f"link set {self.wg} up",
                *(
                    f"route add {a}/128 via fe80::2 dev {self.wg}"
                    for a in (self.remote_a, self.remote_b, self.remote_infra)
                ),
            ],
            netns=host,
        )
        ip_batch(
            [
                "addr add fe80::2/64 dev wg0 nodad",
                "link set wg0 up",
                *(
                    f"addr add {a}/128 dev lo"
                    for a in (self.remote_a, self.remote_b, self.remote_infra)
                ),
                "route add fdaa::/16 via fe80::1 dev wg0",
            ],
            netns=remote,
        )

    def _machine(self, m: Machine) -> None:
        host, inside, veth = self.ns("h"), self.ns(m.name), self.veth(m.name)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", inside, netns=host)
        if self.mode == "bridged":
            ip_batch(
                [
                    f"link set {veth} master {self.bridge} up",
                    f"route add {m.prefix6} dev {self.bridge}",
                ],
                netns=host,
            )
            ip_batch(
                [
                    f"addr add {m.ipv4}/24 dev eth0",
                    "link set eth0 up",
                    f"route add default via 10.{self.octet}.1.1",
                    f"addr add {m.sixpn}/112 dev eth0 nodad",
                    f"route add {sixpn.SIXPN} via {BRIDGE_GATEWAY6} dev eth0",
                ],
                netns=inside,
            )
            return
        ip_batch(
            [
                f"link set {veth} up",
                f"addr add 10.{self.octet}.1.1/32 dev {veth}",
                f"route add {m.ipv4}/32 dev {veth}",
                f"addr add {m.gateway6}/112 dev {veth} nodad",
            ],
            netns=host,
        )
        ip_batch(
            [
                f"addr add {m.ipv4}/32 dev eth0",
                "link set eth0 up",
                f"route add 10.{self.octet}.1.1/32 dev eth0",
                f"route add default via 10.{self.octet}.1.1",
                f"addr add {m.sixpn}/112 dev eth0 nodad",
                f"route add default via {m.gateway6}",
            ],
            netns=inside,
        )

    def serve(self, ns: str, name: str, *, tcp: list[str], udp: list[str] | None = None) -> None:
        argv = [
            "ip",
            "netns",
            "exec",
            self.ns(ns),
            sys.executable,
            PROBE,
            "serve",
            "--name",
            name,
            "--log",
            str(self.udp_log),
        ]
        for endpoint in tcp:
            argv += ["--tcp", endpoint]
        for endpoint in udp or []:
            argv += ["--udp", endpoint]
        self.start(argv)

    def start(self, argv: list[str], ready: str = "ready") -> subprocess.Popen[str]:
        """Start a server and wait for its line containing ``ready`` (no sleeping)."""
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None
        for _ in range(5):  # iperf3 prints a rule line first
            line = proc.stdout.readline()
            if ready in line or not line:
                break
        if ready not in line:
            error = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
            raise RuntimeError(f"{argv} did not start: {line.strip()} {error}")
        return proc

    # -- probing ------------------------------------------------------------

    def run(self, ns: str, *args: str) -> str:
        argv = ["ip", "netns", "exec", self.ns(ns), sys.executable, PROBE, *args]
        return subprocess.run(
            argv, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    def connect(self, ns: str, address: object, port: int, source: object = None) -> str:
        """Connect from ``ns``; "open:<server name>", "refused" or "timeout" after 3 s."""
        extra = ["--source", str(source)] if source else []
        return self.run(ns, "connect", str(address), str(port), "--timeout", "3", *extra)

    def dropped(self, ns: str, address: object, port: int, source: object = None) -> bool:
        """Whether a connection from ``ns`` goes unanswered for 1.5 s: past the first
        SYN retransmission, so a path that is only slow is not taken for a drop."""
        extra = ["--source", str(source)] if source else []
        return (
            self.run(ns, "connect", str(address), str(port), "--timeout", "1.5", *extra)
            == "timeout"
        )

    def udp(self, ns: str, address: object, port: int, payload: str, source: object = None) -> str:
        """Send one datagram; "reply" when the echo came back within 3 s, else "timeout"."""
        extra = ["--source", str(source)] if source else []
        return self.run(ns, "udp", str(address), str(port), payload, "--timeout", "3", *extra)

    def udp_send(self, ns: str, address: object, port: int, payload: str, source: object) -> None:
        """Send one datagram and do not wait for an answer (a spoofer gets none)."""
        self.run(
            ns, "udp", str(address), str(port), payload, "--timeout", "0", "--source", str(source)
        )

    def udp_seen(self) -> list[str]:
        return self.udp_log.read_text().splitlines() if self.udp_log.exists() else []

    def teardown(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for name in ("h", "e", "r", *(m.name for m in self.machines)):
            delete_netns(self.ns(name))
