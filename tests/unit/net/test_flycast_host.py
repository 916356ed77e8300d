"""Flycast's kernel path on the client's own host (``ferry.net.flycast_host``): which
published ports a host forwards itself, the plans the control plane accepts, the rules."""

from __future__ import annotations

import ipaddress

import pytest

from ferry.errors import ValidationError
from ferry.model.mesh import EdgeFastPlan, FastForward
from ferry.net import sixpn
from ferry.net.flycast import flycast_address
from ferry.net.flycast_host import checked_plan, host_fast_ports, host_ruleset
from ferry.net.nftables import check_ruleset

ORG = 0x10
DB = flycast_address(ORG, 1)
PRIMARY = sixpn.machine_address(ORG, 1, 1)
REPLICA = sixpn.machine_address(ORG, 1, 2)
ELSEWHERE = sixpn.machine_address(ORG, 2, 1)


def _forward(*targets: ipaddress.IPv6Address, app: str = "db") -> FastForward:
    return FastForward(
        address=str(DB), port=5432, organization=str(sixpn.org_prefix(ORG)),
        targets=[str(t) for t in targets], target_port=5433, app=app,
    )  # fmt: skip


def _plans(*forwards: FastForward, region: str = "ams") -> tuple[EdgeFastPlan, ...]:
    return (EdgeFastPlan(region=region, ports=list(forwards)),)


def test_a_host_forwards_a_port_whose_every_target_is_its_own_passing_machine() -> None:
    local = {PRIMARY: "db", REPLICA: "db"}
    passing = {(PRIMARY, 5433)}
    (port,) = host_fast_ports(_plans(_forward(PRIMARY)), "ams", local, passing)
    assert (port.address, port.port, port.targets, port.target_port) == (DB, 5432, (PRIMARY,), 5433)
    assert port.organization == sixpn.org_prefix(ORG)


@pytest.mark.parametrize(
    ("plans", "local", "passing", "why"),
    [
        (_plans(_forward(PRIMARY)), {PRIMARY: "db"}, set(), "its check does not pass here"),
        (_plans(_forward(PRIMARY, ELSEWHERE)), {PRIMARY: "db"}, {(PRIMARY, 5433)},
         "a target on another host: the edge balances over both"),
        (_plans(_forward(PRIMARY), region="iad"), {PRIMARY: "db"}, {(PRIMARY, 5433)},
         "another region's edge's plan"),
        (_plans(_forward(PRIMARY, app="other")), {PRIMARY: "db"}, {(PRIMARY, 5433)},
         "the machine here is not of the port's app"),
        (_plans(_forward(PRIMARY)), {}, set(), "no such machine here (stopped, moved)"),
    ],
)  # fmt: skip
def test_a_host_leaves_the_port_to_the_edge(
    plans: tuple[EdgeFastPlan, ...],
    local: dict[ipaddress.IPv6Address, str],
    passing: set[tuple[ipaddress.IPv6Address, int]],
    why: str,
) -> None:
    assert host_fast_ports(plans, "ams", local, passing) == (), why


def test_the_control_plane_takes_a_plan_of_flycast_ports_of_one_organization() -> None:
    plan = checked_plan("ams", EdgeFastPlan(region="sin", ports=[_forward(ELSEWHERE, PRIMARY)]))
    assert plan.region == "ams"  # the path's, not the body's
    assert plan.ports[0].targets == sorted([str(PRIMARY), str(ELSEWHERE)])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"address": str(PRIMARY)}, "is not a Flycast address"),
        ({"organization": str(sixpn.org_prefix(ORG + 1))}, "is not the address's"),
        ({"targets": [str(sixpn.machine_address(ORG + 1, 1, 1))]}, "is not a machine of"),
        ({"targets": [str(DB)]}, "is not a machine of"),
        ({"targets": ["10.0.0.1"]}, "target '10.0.0.1'"),
        ({"targets": []}, "1 to 64 targets"),
        ({"port": 0}, "port 0 is not a TCP port"),
        ({"target_port": 70000}, "target port 70000"),
        ({"app": ""}, "app name"),
    ],
)
def test_a_plan_that_is_not_an_edges_is_refused_naming_the_entry(
    change: dict[str, object], named: str
) -> None:
    bad = _forward(PRIMARY).model_copy(update=change)
    with pytest.raises(ValidationError, match=named):
        checked_plan("ams", EdgeFastPlan(ports=[bad]))


def test_the_hosts_rules_check_the_organization_and_expire_unless_loaded_again() -> None:
    (port,) = host_fast_ports(
        _plans(_forward(PRIMARY, REPLICA)), "ams", {PRIMARY: "db", REPLICA: "db"},
        {(PRIMARY, 5433), (REPLICA, 5433)},
    )  # fmt: skip
    rules = host_ruleset([port], alive_seconds=10)
    assert f"ip6 saddr {sixpn.org_prefix(ORG)}" in rules
    assert f"{DB} . 5432 timeout 10s" in rules and "@alive" in rules
    assert "numgen inc mod 2" in rules
    assert f"ip6 saddr != {{ {PRIMARY}, {REPLICA} }}" in rules  # a target's own: the edge's
    check_ruleset(rules)
    empty = host_ruleset([], alive_seconds=10)
    assert "dnat" not in empty
    check_ruleset(empty)
