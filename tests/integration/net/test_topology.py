"""Real namespaces: the cluster topology and a host's machine networks, built and removed."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ferry.agent.network_hook import MachineNetwork
from ferry.cluster.lifecycle import pick_octet
from ferry.cluster.topology import build_topology, teardown_topology
from ferry.net.iproute import (
    add_netns,
    delete_netns,
    list_netns,
    netns_enter_argv,
    netns_has_link,
)
from ferry.net.plan import ClusterPlan, plan_cluster


@pytest.fixture
def plan() -> Iterator[ClusterPlan]:
    prefix = f"fi{secrets.token_hex(2)}"
    built = plan_cluster(prefix, pick_octet(200), ["ams", "sin"], 2)
    try:
        build_topology(built)
        yield built
    finally:
        teardown_topology(prefix)


def ping(netns: str, address: str) -> bool:
    argv = ["ip", "netns", "exec", netns, "ping", "-c1", "-W2", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_every_host_reaches_every_other_and_the_root_namespace(plan: ClusterPlan) -> None:
    ams1, ams2, sin1, _ = plan.hosts
    assert ping(ams1.netns, ams2.address)  # same region
    assert ping(ams1.netns, sin1.address)  # across the core
    assert ping(sin1.netns, plan.root_address)  # where the API and registry listen
    assert ping(plan.regions[1].netns, ams1.address)  # a client in sin reaches an ams host


def test_machine_namespaces_are_reachable_across_regions_and_removed(plan: ClusterPlan) -> None:
    host = plan.hosts[0]
    net = MachineNetwork(f"{plan.prefix}-", host.machine_subnet)
    ip = host.machine_subnet.replace(".0/24", ".7")
    setup = f"n = N({net.netns_prefix!r}, {host.machine_subnet!r})"

    def in_host(statements: str) -> None:
        """Run MachineNetwork inside the host's namespace, as the agent does."""
        code = f"from ferry.agent.network_hook import MachineNetwork as N; {setup}; {statements}"
        argv = netns_enter_argv(host.netns, [sys.executable, "-c", code])
        subprocess.run(argv, check=True, capture_output=True)

    in_host(f"n.ensure_bridge(); n.ensure('abc123', {ip!r}); n.ensure('abc123', {ip!r})")
    assert net.netns_name("abc123") in list_netns(f"{plan.prefix}-vm-")
    # The check a restart makes of an existing namespace, without running ip.
    assert netns_has_link(net.netns_name("abc123"), "eth0")
    assert not netns_has_link(net.netns_name("abc123"), "eth9")
    assert ping(plan.regions[1].netns, ip)  # a client in sin reaches the ams machine
    in_host("n.remove('abc123')")
    assert list_netns(f"{plan.prefix}-vm-") == []
    assert not ping(plan.regions[1].netns, ip)


def test_a_start_takes_the_namespace_prepared_for_its_address(plan: ClusterPlan) -> None:
    host = plan.hosts[1]
    net = MachineNetwork(f"{plan.prefix}-", host.machine_subnet)
    first, second = (host.machine_subnet.replace(".0/24", f".{n}") for n in (2, 3))
    setup = f"n = N({net.netns_prefix!r}, {host.machine_subnet!r})"

    def in_host(statements: str) -> str:
        code = f"from ferry.agent.network_hook import MachineNetwork as N; {setup}; {statements}"
        argv = netns_enter_argv(host.netns, [sys.executable, "-c", code])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    pool = f"{plan.prefix}-pool-"
    other_host = f"{pool}10.99.0.5"  # another host's: drain leaves it alone
    add_netns(other_host)
    try:
        # One agent process: prepare, then start a machine on the first address.
        out = in_host(
            "n.ensure_bridge(); n.prepare([]); print(n.pool.wait_idle(10)); "
            f"n.ensure('def456', {first!r}); print(n.pool.wait_idle(0))"
        )
        assert out.split("\n")[:2] == [str([first, second]), str([second])]
        left = [n for n in list_netns(pool) if n != other_host]
        assert left == [f"{pool}{second}"]  # the first one became the machine's
        assert net.netns_name("def456") in list_netns(f"{plan.prefix}-vm-")
        assert ping(plan.regions[1].netns, first)
    finally:
        in_host("n.remove('def456'); n.drop_prepared()")
        survivors = list_netns(pool)
        delete_netns(other_host)
    assert survivors == [other_host]
    assert list_netns(f"{plan.prefix}-vm-") == []
    assert not ping(plan.regions[1].netns, first)


def test_teardown_leaves_no_namespace() -> None:
    prefix = f"fi{secrets.token_hex(2)}"
    built = plan_cluster(prefix, pick_octet(201), ["ams"], 1)
    try:
        build_topology(built)
        assert len(list_netns(f"{prefix}-")) == 3
    finally:
        removed = teardown_topology(prefix)
    assert len(removed) == 3
    assert list_netns(f"{prefix}-") == []


def test_the_gateway_keeps_its_mac_while_machines_come_and_go(plan: ClusterPlan) -> None:
    """Running machines' ARP entries for their gateway stay right when another machine's
    veth joins or leaves the bridge (a changed bridge MAC stalled their replies ~5 s)."""
    host = plan.hosts[2]
    net = MachineNetwork(f"{plan.prefix}-", host.machine_subnet, prepared=0)
    setup = f"n = N({net.netns_prefix!r}, {host.machine_subnet!r}, prepared=0)"
    addresses = [host.machine_subnet.replace(".0/24", f".{n}") for n in range(2, 8)]

    def in_host(statements: str) -> str:
        code = f"from ferry.agent.network_hook import MachineNetwork as N; {setup}; {statements}"
        argv = netns_enter_argv(host.netns, [sys.executable, "-c", code])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def bridge_mac() -> str:
        argv = netns_enter_argv(host.netns, ["ip", "-o", "link", "show", "br0"])
        shown = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        return shown.split("link/ether ")[1].split()[0]

    in_host("n.ensure_bridge()")
    fixed = bridge_mac()
    seen = set()
    try:
        for index, address in enumerate(addresses):
            in_host(f"n.ensure('m{index}', {address!r})")
            seen.add(bridge_mac())
        for index in range(0, len(addresses), 2):
            in_host(f"n.remove('m{index}')")
            seen.add(bridge_mac())
    finally:
        in_host("; ".join(f"n.remove('m{index}')" for index in range(len(addresses))))
    assert seen == {fixed}
    assert fixed.startswith("02:fe:")  # locally administered, derived from the gateway


def test_a_new_machine_at_a_freed_address_is_reached_at_once(plan: ClusterPlan) -> None:
    """The host forgets a removed machine's MAC: the next machine at that address is
    reached by the first packet, not after a stale ARP entry times out."""
    host = plan.hosts[3]
    net = MachineNetwork(f"{plan.prefix}-", host.machine_subnet, prepared=0)
    setup = f"n = N({net.netns_prefix!r}, {host.machine_subnet!r}, prepared=0)"
    address = host.machine_subnet.replace(".0/24", ".9")

    def in_host(statements: str) -> None:
        code = f"from ferry.agent.network_hook import MachineNetwork as N; {setup}; {statements}"
        argv = netns_enter_argv(host.netns, [sys.executable, "-c", code])
        subprocess.run(argv, check=True, capture_output=True)

    def host_pings() -> bool:
        argv = netns_enter_argv(host.netns, ["ping", "-c1", "-W1", address])
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    in_host(f"n.ensure_bridge(); n.ensure('first', {address!r})")
    try:
        assert host_pings()  # the host learns the first machine's MAC
        in_host(f"n.remove('first'); n.ensure('second', {address!r})")
        assert host_pings()
    finally:
        in_host("n.remove('first'); n.remove('second')")
