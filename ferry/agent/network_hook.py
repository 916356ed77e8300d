"""Host networking of machines: one bridge per host, one network namespace per machine.

The host's bridge ``br0`` holds the gateway of the host's machine subnet;
each machine gets a named namespace with a veth ``eth0`` on that bridge, its
private IP and a default route via the gateway. runc joins the namespace by
path, so the network is ready before the machine's process starts. Namespaces
for the addresses the control plane will hand out next are made ahead of
time (``ferry.net.netns_pool``), so a start only renames one.

6PN: the machine's private address (``Machine.private_ip``, a ``/112`` of
``fdaa::/16``, ``ferry.net.sixpn``) goes on its ``eth0`` too, without duplicate
address detection (``nodad``: the control plane made it unique, and a tentative
address could not be used for the first second of the machine's life), with a
route to the whole of ``fdaa::/16`` via the bridge's fixed link-local address
``fe80::1``. The host routes the machine's ``/112`` to the bridge, where the
machine's veth is, and forwards IPv6; so machines on one host reach each other's
6PN addresses through the host's routing table, and the mesh (another layer)
only adds routes for other hosts' prefixes. Both steps are idempotent: a
namespace built at the start gets them in its own two ``ip`` execs; a prepared
or existing one (an agent restart's) costs two more.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ferry.errors import NetworkError
from ferry.net.iproute import (
    NETNS_DIR,
    delete_netns,
    ip,
    ip_batch,
    link_exists,
    link_present,
    list_netns,
    netns_exists,
    netns_has_link,
)
from ferry.net.netns_pool import PreparedNamespaces
from ferry.net.sixpn import MACHINE_PREFIXLEN, SIXPN, parse

BRIDGE = "br0"
SIXPN_GATEWAY = "fe80::1"
"""The bridge's link-local address: every machine's next hop to other 6PN addresses."""
_IPV6_FORWARDING = Path("/proc/sys/net/ipv6/conf/all/forwarding")


class MachineNetwork:
    """Creates and removes machine namespaces on this host. Blocking; raises ``NetworkError``."""

    def __init__(self, netns_prefix: str, machine_subnet: str, *, prepared: int = 2) -> None:
        """``prepared``: how many namespaces to keep ready (0: none, build each at start)."""
        self.netns_prefix = netns_prefix
        self.subnet = ipaddress.ip_network(machine_subnet)
        self.gateway = str(next(self.subnet.hosts()))
        self.pool = PreparedNamespaces(netns_prefix, BRIDGE, machine_subnet, prepared)

    def ensure_bridge(self) -> None:
        """Create the host bridge with the subnet's gateway address. Idempotent.

        The bridge gets a fixed MAC address: without one, Linux gives a bridge
        the lowest MAC of its ports, so every machine whose veth joins or leaves
        could change the gateway's MAC under the running machines, whose ARP
        entries then point at the old one — their replies are dropped until
        the entry is probed again, about 5 s later (requests stalled while
        machines were created or destroyed on the same host).
        """
        if not link_exists(BRIDGE):
            ip_batch(
                [
                    f"link add {BRIDGE} address {bridge_mac(self.gateway)} type bridge",
                    f"addr add {self.gateway}/{self.subnet.prefixlen} dev {BRIDGE}",
                    f"link set {BRIDGE} up",
                ]
            )
        self.ensure_sixpn_gateway()

    def ensure_sixpn_gateway(self) -> None:
        """Make the host a 6PN router for its machines: IPv6 forwarding on in this
        (the host's) namespace, and ``fe80::1`` on the bridge, usable at once
        (``nodad``). Idempotent; raises ``NetworkError``."""
        try:
            if _IPV6_FORWARDING.read_text().strip() != "1":
                _IPV6_FORWARDING.write_text("1")
        except OSError as exc:
            raise NetworkError(f"cannot turn on IPv6 forwarding: {exc.strerror}") from exc
        ip_batch([f"addr replace {SIXPN_GATEWAY}/64 dev {BRIDGE} nodad"])

    def netns_name(self, machine_id: str) -> str:
        return f"{self.netns_prefix}vm-{machine_id}"

    def netns_path(self, machine_id: str) -> Path:
        return NETNS_DIR / self.netns_name(machine_id)

    def prepare(self, used_addresses: list[str]) -> None:
        """Keep namespaces ready for the addresses that come after ``used_addresses``
        (the host's live machines). Returns at once; the work runs in the background."""
        if self.pool.size > 0:
            self.pool.refill_soon(used_addresses)

    def drop_prepared(self) -> None:
        """Delete the namespaces made ahead of time (agent start and stop)."""
        self.pool.drain()

    def ensure(self, machine_id: str, host_ip: str, private_ip: str = "") -> Path:
        """Give the machine its namespace, veth and addresses; return the namespace path.

        ``host_ip`` is the host-local IPv4, ``private_ip`` the 6PN address (none
        when empty: a machine from before 6PN). Idempotent: an existing namespace
        with an ``eth0`` is kept, and given its 6PN address if it lacks it. Takes
        the prepared namespace of ``host_ip`` when there is one.
        """
        name = self.netns_name(machine_id)
        if netns_exists(name) and not netns_has_link(name, "eth0"):
            self.remove(machine_id, private_ip)
        if not netns_exists(name) and not self.pool.take(host_ip, name):
            self._build(machine_id, host_ip, private_ip)  # 6PN included: no extra exec
        elif private_ip:
            ip_batch(_sixpn_in_machine(private_ip), netns=name)
            ip_batch([_sixpn_on_host(private_ip)])
        return self.netns_path(machine_id)

    def _build(self, machine_id: str, host_ip: str, private_ip: str = "") -> None:
        name = self.netns_name(machine_id)
        veth = _veth_name(machine_id)
        if link_present(veth):
            ip("link", "del", veth, check=False)
        ip_batch(
            [
                f"netns add {name}",
                f"link add {veth} type veth peer name eth0 netns {name}",
                f"link set {veth} master {BRIDGE} up",
                *([_sixpn_on_host(private_ip)] if private_ip else []),
            ]
        )
        ip_batch(
            [
                "link set lo up",
                f"addr add {host_ip}/{self.subnet.prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {self.gateway}",
                *(_sixpn_in_machine(private_ip) if private_ip else []),
            ],
            netns=name,
        )

    def remove(self, machine_id: str, private_ip: str = "") -> None:
        """Delete the machine's namespace (its veth goes with it). Idempotent.

        The host's ARP entries on the bridge are flushed too: the next machine here
        may get the same address with another MAC, and a stale entry would send
        its traffic (the edge's requests, the agent's checks) to the old one for
        seconds. The rest are re-learnt with one ARP exchange each. With
        ``private_ip``, the host's route to its /112 goes too.
        """
        delete_netns(self.netns_name(machine_id))
        if private_ip:
            prefix = str(parse(private_ip).prefix)
            ip("-6", "route", "del", prefix, "dev", BRIDGE, check=False)
        if link_present(_veth_name(machine_id)):
            ip("link", "del", _veth_name(machine_id), check=False)
        if link_present(BRIDGE):
            ip("neigh", "flush", "dev", BRIDGE, check=False)

    def list_machine_ids(self) -> list[str]:
        """Machine ids that have a namespace on this host."""
        prefix = f"{self.netns_prefix}vm-"
        return [n[len(prefix) :] for n in list_netns(prefix)]


def _sixpn_in_machine(private_ip: str) -> list[str]:
    """The ``ip`` lines, inside the machine's namespace, that give eth0 its 6PN address
    (usable at once: ``nodad``) and send all of ``fdaa::/16`` to the host. Idempotent."""
    return [
        f"addr replace {private_ip}/{MACHINE_PREFIXLEN} dev eth0 nodad",
        f"route replace {SIXPN} via {SIXPN_GATEWAY} dev eth0",
    ]


def _sixpn_on_host(private_ip: str) -> str:
    """The host's ``ip`` line routing the machine's /112 to the bridge. Idempotent."""
    return f"route replace {parse(private_ip).prefix} dev {BRIDGE}"


def _veth_name(machine_id: str) -> str:
    return f"v{machine_id[:13]}"


def bridge_mac(gateway: str) -> str:
    """A locally administered unicast MAC for the bridge whose address is ``gateway``
    (IPv4): ``02:fe`` then the address's four bytes, so each host's differs. Pure."""
    packed = ipaddress.IPv4Address(gateway).packed
    return "02:fe:" + ":".join(f"{byte:02x}" for byte in packed)
