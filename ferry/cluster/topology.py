"""Build and tear down the embedded cluster's networks from a ``ClusterPlan``.

Root namespace <-> core <-> regions <-> hosts; see ``ferry.net.plan`` for the
addresses. The core forwards between regions (the WAN); each region's edge
namespace forwards between the core and its hosts; each host forwards to its
machines. Nothing listens on or routes through anything but these
namespaces and one veth in the root namespace.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ferry.errors import NetworkError
from ferry.net.iproute import add_netns, delete_netns, ip_batch, list_netns, set_sysctl
from ferry.net.plan import ClusterPlan, HostPlan, RemoteHostPlan

log = logging.getLogger(__name__)


def root_link_name(plan: ClusterPlan) -> str:
    """Name of the one veth the cluster puts in the root namespace (<= 15 chars)."""
    return f"{plan.prefix}"[:15]


def build_topology(plan: ClusterPlan) -> None:
    """Create every namespace, link, address and route of ``plan``.

    Blocking; raises ``NetworkError``. Call ``teardown_topology`` on failure.
    """
    core = plan.core_netns
    add_netns(core)
    set_sysctl(core, "net.ipv4.ip_forward", "1")
    root_if = root_link_name(plan)
    ip_batch(
        [
            f"link add {root_if} type veth peer name root netns {core}",
            f"addr add {plan.root_address}/24 dev {root_if}",
            f"link set {root_if} up",
            f"route add {plan.cluster_cidr} via {plan.core_address} dev {root_if}",
        ]
    )
    core_lines = [f"addr add {plan.core_address}/24 dev root", "link set root up"]
    for region in plan.regions:
        add_netns(region.netns)
        set_sysctl(region.netns, "net.ipv4.ip_forward", "1")
        core_if = f"r-{region.code}"
        core_lines += [
            f"link add {core_if} type veth peer name uplink netns {region.netns}",
            f"addr add {region.uplink_core}/30 dev {core_if}",
            f"link set {core_if} up",
            f"route add {region.aggregate} via {region.uplink_region} dev {core_if}",
        ]
    ip_batch(core_lines[:2], netns=core)
    ip_batch(core_lines[2:], netns=core)
    for region in plan.regions:
        ip_batch(
            [
                f"addr add {region.uplink_region}/30 dev uplink",
                "link set uplink up",
                "link add edge0 type bridge",
                f"addr add {region.edge_address}/24 dev edge0",
                "link set edge0 up",
                f"route add default via {region.uplink_core}",
                f"addr add {plan.edge_address}/32 dev lo",
            ],
            netns=region.netns,
        )
        switch_without_netfilter(region.netns)
        write_region_resolver(region.netns, plan.edge_address)
        for host in region.hosts:
            _build_host(plan, region.netns, host)
    for remote in plan.remote_hosts:
        _build_remote_host(plan, remote)
    log.info(
        "topology up: %d regions, %d hosts, %d remote",
        len(plan.regions),
        len(plan.hosts),
        len(plan.remote_hosts),
    )


def teardown_topology(prefix: str) -> list[str]:
    """Delete every namespace named ``<prefix>-…`` (their veths and routes go with them)
    and their resolver files.

    Idempotent; returns the names it deleted. Processes inside must be gone first,
    or the namespaces live on unnamed until they exit.
    """
    names = list_netns(f"{prefix}-")
    for name in names:
        delete_netns(name)
    if NETNS_ETC.is_dir():
        for directory in NETNS_ETC.glob(f"{prefix}-*"):
            shutil.rmtree(directory, ignore_errors=True)
    return names


NETNS_ETC = Path("/etc/netns")


def write_region_resolver(netns: str, edge_address: str) -> None:
    """Make ``ip netns exec <netns>`` clients resolve names with the region's edge DNS.

    ``ip netns exec`` bind-mounts ``/etc/netns/<netns>/resolv.conf`` over
    ``/etc/resolv.conf`` for the command it runs.
    """
    directory = NETNS_ETC / netns
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolv.conf").write_text(
        f"nameserver {edge_address}\noptions timeout:1 attempts:2\n"
    )


def _build_host(plan: ClusterPlan, region_netns: str, host: HostPlan) -> None:
    add_netns(host.netns)
    set_sysctl(host.netns, "net.ipv4.ip_forward", "1")
    host_if = f"h{host.index + 1}"
    ip_batch(
        [
            f"link add {host_if} type veth peer name eth0 netns {host.netns}",
            f"link set {host_if} master edge0 up",
        ],
        netns=region_netns,
    )
    ip_batch(
        [
            f"addr add {host.address}/24 dev eth0",
            "link set eth0 up",
            f"route add default via {host.gateway}",
        ],
        netns=host.netns,
    )
    ip_batch([f"route add {host.machine_subnet} via {host.address}"], netns=region_netns)


def _build_remote_host(plan: ClusterPlan, remote: RemoteHostPlan) -> None:
    """A host namespace on a /30 of its own off the core: a server elsewhere on the WAN.

    No bridge, no route into any region's networks: ``remote_link_rules`` lets it
    reach only the control plane's address and WireGuard ports.
    """
    add_netns(remote.netns)
    set_sysctl(remote.netns, "net.ipv4.ip_forward", "1")
    ip_batch(
        [
            f"link add {remote.link} type veth peer name eth0 netns {remote.netns}",
            f"addr add {remote.core_address}/30 dev {remote.link}",
            f"link set {remote.link} up",
        ],
        netns=plan.core_netns,
    )
    ip_batch(
        [
            "link set lo up",
            f"addr add {remote.address}/30 dev eth0",
            "link set eth0 up",
            f"route add default via {remote.core_address}",
        ],
        netns=remote.netns,
    )


def remote_link_rules(plan: ClusterPlan, ports: tuple[int, ...], wireguard: tuple[int, ...]) -> str:
    """The core's nftables rules for the remote hosts' links (one ``nft -f`` script).

    From a remote host: TCP to the control plane's address on ``ports`` (API,
    registry) and UDP to WireGuard ports anywhere; to it: WireGuard; replies both
    ways. Everything else is dropped: its machines reach the rest over 6PN only.
    """
    links = ", ".join(f'"{r.link}"' for r in plan.remote_hosts)
    tcp = ", ".join(str(p) for p in ports)
    udp = ", ".join(str(p) for p in wireguard)
    return f"""table inet ferry_wan
delete table inet ferry_wan
table inet ferry_wan {{
    chain forward {{
        type filter hook forward priority 0; policy accept;
        iifname {{ {links} }} ct state established,related accept
        iifname {{ {links} }} ip daddr {plan.root_address} tcp dport {{ {tcp} }} accept
        iifname {{ {links} }} udp dport {{ {udp} }} accept
        iifname {{ {links} }} drop
        oifname {{ {links} }} ct state established,related accept
        oifname {{ {links} }} udp dport {{ {udp} }} accept
        oifname {{ {links} }} drop
    }}
}}
"""


BRIDGE_NETFILTER = (
    "bridge-nf-call-arptables",
    "bridge-nf-call-iptables",
    "bridge-nf-call-ip6tables",
)


def switch_without_netfilter(netns: str) -> None:
    """Let the region's LAN bridge switch frames as a switch does: without passing them to
    the namespace's IP firewall (``br_netfilter``, when some process has loaded it, does by
    default). Otherwise a packet the edge's kernel forwards back to the host it came from
    (Flycast's kernel path, ``ferry.net.flycast_fast``) is taken for a bridged frame after
    its NAT and dropped (a bridge never sends a frame out of the port it came in by).
    Without ``br_netfilter`` the keys do not exist and there is nothing to do."""
    for key in BRIDGE_NETFILTER:
        try:
            set_sysctl(netns, f"net.bridge.{key}", "0")
        except NetworkError:
            return  # br_netfilter not loaded: bridges do not call the IP firewall
