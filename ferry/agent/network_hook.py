"""Host networking of machines: one bridge per host, one network namespace per machine.

The host's bridge ``br0`` holds the gateway of the host's machine subnet;
each machine gets a named namespace with a veth ``eth0`` on that bridge, its
private IP and a default route via the gateway. runc joins the namespace by
path, so the network is ready before the machine's process starts. Namespaces
for the addresses the control plane will hand out next are made ahead of
time (``ferry.net.netns_pool``), so most starts run no ``ip`` at all.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

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

BRIDGE = "br0"


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

    def ensure(self, machine_id: str, host_ip: str) -> Path:
        """Give the machine its namespace, veth and address; return the namespace path.

        Idempotent: an existing namespace with an ``eth0`` is kept as it is. Takes
        the prepared namespace of ``host_ip`` when there is one (no exec).
        """
        name = self.netns_name(machine_id)
        if netns_exists(name):
            if netns_has_link(name, "eth0"):
                return self.netns_path(machine_id)
            self.remove(machine_id)
        if self.pool.take(host_ip, name):
            return self.netns_path(machine_id)
        veth = _veth_name(machine_id)
        if link_present(veth):
            ip("link", "del", veth, check=False)
        ip_batch(
            [
                f"netns add {name}",
                f"link add {veth} type veth peer name eth0 netns {name}",
                f"link set {veth} master {BRIDGE} up",
            ]
        )
        ip_batch(
            [
                "link set lo up",
                f"addr add {host_ip}/{self.subnet.prefixlen} dev eth0",
                "link set eth0 up",
                f"route add default via {self.gateway}",
            ],
            netns=name,
        )
        return self.netns_path(machine_id)

    def remove(self, machine_id: str) -> None:
        """Delete the machine's namespace (its veth goes with it). Idempotent.

        The host's ARP entries on the bridge are flushed too: the next machine here
        may get the same address with another MAC, and a stale entry would send
        its traffic (the edge's requests, the agent's checks) to the old one for
        seconds. The rest are re-learnt with one ARP exchange each.
        """
        delete_netns(self.netns_name(machine_id))
        if link_present(_veth_name(machine_id)):
            ip("link", "del", _veth_name(machine_id), check=False)
        if link_present(BRIDGE):
            ip("neigh", "flush", "dev", BRIDGE, check=False)

    def list_machine_ids(self) -> list[str]:
        """Machine ids that have a namespace on this host."""
        prefix = f"{self.netns_prefix}vm-"
        return [n[len(prefix) :] for n in list_netns(prefix)]


def _veth_name(machine_id: str) -> str:
    return f"v{machine_id[:13]}"


def bridge_mac(gateway: str) -> str:
    """A locally administered unicast MAC for the bridge whose address is ``gateway``
    (IPv4): ``02:fe`` then the address's four bytes, so each host's differs. Pure."""
    packed = ipaddress.IPv4Address(gateway).packed
    return "02:fe:" + ":".join(f"{byte:02x}" for byte in packed)
