"""Setting the WAN up and down: idempotent, leaves nothing, survives a forwarder restart."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.cluster.lifecycle import pick_octet
from ferry.cluster.topology import build_topology, teardown_topology
from ferry.cluster.wan import forwarder_attached, setup_wan, teardown_wan
from ferry.net.iproute import ip, link_exists, netns_exec_argv
from ferry.net.latency import LatencyMatrix
from ferry.net.plan import ClusterPlan, plan_cluster

from .netns_tools import Forwarder, ping_avg_ms, start_ping

# A short RTT keeps these checks quick.
MATRIX = LatencyMatrix.default().with_overrides({"ams-fra": 40})


@pytest.fixture
def plan(tmp_path: Path) -> Iterator[ClusterPlan]:
    prefix = f"fw{secrets.token_hex(2)}"
    built = plan_cluster(prefix, pick_octet(212), ["ams", "fra"], 1)
    try:
        build_topology(built)
        yield built
    finally:
        teardown_wan(built, tmp_path)
        teardown_topology(prefix)


def core_rules(plan: ClusterPlan) -> list[str]:
    """The policy rules in core besides the kernel's three defaults."""
    lines = ip("rule", netns=plan.core_netns).splitlines()
    return [line for line in lines if line.split(":")[0] not in ("0", "32766", "32767")]


def reachable(netns: str, address: str) -> bool:
    argv = netns_exec_argv(netns, ["ping", "-c1", "-W1", address])
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def test_setup_twice_adds_each_rule_once_and_teardown_twice_removes_all(
    plan: ClusterPlan, tmp_path: Path
) -> None:
    spec = setup_wan(plan, MATRIX, tmp_path)
    setup_wan(plan, MATRIX, tmp_path)
    assert len(core_rules(plan)) == 3  # the root bypass and one per region
    assert link_exists(spec.tun, netns=plan.core_netns)
    assert spec.config_path.exists()
    assert not forwarder_attached(spec)
    teardown_wan(plan, tmp_path)
    teardown_wan(plan, tmp_path)
    assert core_rules(plan) == []
    assert not link_exists(spec.tun, netns=plan.core_netns)
    assert not spec.config_path.exists()
    assert reachable(plan.region("ams").netns, plan.region("fra").edge_address)  # plain routing


def test_forwarder_restart_loses_only_the_wan_and_the_root_path_never(
    plan: ClusterPlan, tmp_path: Path
) -> None:
    ams, fra = plan.region("ams"), plan.region("fra")
    spec = setup_wan(plan, MATRIX, tmp_path)
    forwarder = Forwarder(spec, tmp_path / "forwarder.log")
    try:
        assert reachable(ams.netns, fra.edge_address)
        assert forwarder.stop() == 0  # SIGTERM is a clean exit
        assert not forwarder_attached(spec)
        assert not reachable(ams.netns, fra.edge_address)
        assert reachable(ams.netns, plan.root_address)
        forwarder = Forwarder(spec, tmp_path / "forwarder.log")
        assert 36 <= ping_avg_ms(start_ping(ams.netns, fra.edge_address, count=3)) <= 44
    finally:
        forwarder.stop()


def test_teardown_of_the_topology_leaves_no_tun_behind(tmp_path: Path) -> None:
    prefix = f"fw{secrets.token_hex(2)}"
    built = plan_cluster(prefix, pick_octet(213), ["ams", "fra"], 1)
    try:
        build_topology(built)
        spec = setup_wan(built, MATRIX, tmp_path)
        forwarder = Forwarder(spec, tmp_path / "forwarder.log")
        forwarder.stop()
    finally:
        teardown_topology(prefix)
    assert not link_exists(spec.tun)  # not moved to the root namespace
    teardown_wan(built, tmp_path)  # nothing left to do, and no error
