"""The isolation ruleset as text: nft accepts it, its sets say who may talk to whom."""

from __future__ import annotations

import ipaddress
import re

import pytest

from ferry.errors import NetworkError, ValidationError
from ferry.net import isolation, sixpn
from ferry.net.isolation import HostIsolation, MachinePort
from ferry.net.nftables import check_ruleset
from ferry.net.plan import plan_cluster


def machine(veth: str, network: int, number: int) -> MachinePort:
    return MachinePort(
        veth=veth,
        ipv4=ipaddress.IPv4Address(f"10.7.1.{number + 1}"),
        sixpn=sixpn.machine_address(network, 1, number),
        network=network,
    )


def host(count: int = 3, *, bridge: str | None = "br0") -> HostIsolation:
    """``count`` machines, alternating between organizations 5 and 6."""
    return HostIsolation(
        machines=tuple(machine(f"vm{n}", 5 + n % 2, n) for n in range(1, count + 1)),
        mesh_interfaces=("ferrywg",),
        bridge=bridge,
        edge_sources=(isolation.INFRA_PREFIX, ipaddress.ip_network("10.7.16.1/32")),
        protected=(ipaddress.ip_network("10.7.0.0/16"), ipaddress.ip_network("fd00:cafe::/32")),
    )


def set_elements(text: str, table: str, name: str) -> list[str]:
    body = text[text.index(f"table {table} ferry {{\n") :]
    found = re.search(rf"set {name} {{[^}}]*?elements = {{ (.*?) }};", body)
    return found.group(1).split(", ") if found else []


def rules(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if " comment " in line]


@pytest.mark.parametrize("bridge", ["br0", None])
def test_nft_accepts_the_ruleset_of_a_bridged_and_of_a_routed_host(bridge: str | None) -> None:
    check_ruleset(isolation.render_ruleset(host(bridge=bridge)))


def test_nft_accepts_the_ruleset_of_a_host_without_machines_and_the_removal() -> None:
    check_ruleset(isolation.render_ruleset(HostIsolation(machines=())))
    check_ruleset(isolation.render_ruleset(HostIsolation(machines=(), bridge="br0")))
    check_ruleset(isolation.removal_script())


def test_a_broken_script_is_refused_with_nfts_message() -> None:
    with pytest.raises(NetworkError, match="bogus"):
        check_ruleset("table inet ferry { chain c { bogus } }\n")


def test_the_script_replaces_both_tables_in_one_transaction() -> None:
    text = isolation.render_ruleset(host())
    lines = text.splitlines()
    assert lines[:4] == [
        "table inet ferry {}",
        "delete table inet ferry",
        "table bridge ferry {}",
        "delete table bridge ferry",
    ]
    assert text.count("table inet ferry {\n") == 1
    assert text.count("table bridge ferry {\n") == 1
    assert "flush ruleset" not in text  # other tables on the host are never touched


def test_only_a_bridged_host_gets_the_bridge_table() -> None:
    assert "table bridge ferry {\n" not in isolation.render_ruleset(host(bridge=None))
    text = isolation.render_ruleset(host(bridge="br0"))
    assert set_elements(text, "bridge", "ports") == ['"vm1"', '"vm2"', '"vm3"']


def test_same_org_pairs_each_organization_with_itself_only() -> None:
    text = isolation.render_ruleset(host())
    assert set_elements(text, "inet", "same_org") == [
        "fdaa:0:5::/48 . fdaa:0:5::/48",
        "fdaa:0:6::/48 . fdaa:0:6::/48",
    ]
    assert isolation.organizations(host()) == [sixpn.org_prefix(5), sixpn.org_prefix(6)]


def test_each_machine_owns_its_addresses_on_its_veth_and_on_the_bridge() -> None:
    text = isolation.render_ruleset(host(2))
    m1 = machine("vm1", 6, 1)
    v6 = set_elements(text, "inet", "machine_v6")
    assert f'"vm1" . {m1.sixpn}' in v6
    assert f'"br0" . {m1.sixpn}' in v6
    assert f'"vm2" . {m1.sixpn}' not in v6
    assert set_elements(text, "bridge", "machine_v4") == ['"vm1" . 10.7.1.2', '"vm2" . 10.7.1.3']
    targets = set_elements(text, "inet", "nd_targets")
    assert f'"vm1" . {int(m1.sixpn):#034x}' in targets


def test_services_edges_and_protected_ranges_land_in_their_sets() -> None:
    text = isolation.render_ruleset(host())
    assert set_elements(text, "inet", "services6") == ["fdaa::3 . udp . 53", "fdaa::3 . tcp . 53"]
    assert set_elements(text, "inet", "services4") == []
    assert set_elements(text, "inet", "edge4") == ["10.7.16.1/32"]
    assert set_elements(text, "inet", "edge6") == ["fdaa::/48"]
    assert set_elements(text, "inet", "protected4") == ["10.7.0.0/16"]
    assert set_elements(text, "inet", "protected6") == ["fd00:cafe::/32"]
    assert set_elements(text, "inet", "mesh_ifaces") == ['"ferrywg"']


def test_the_rules_do_not_grow_with_machines_only_the_sets_do() -> None:
    few, many = isolation.render_ruleset(host(3)), isolation.render_ruleset(host(40))
    assert rules(few) == rules(many)
    assert len(set_elements(many, "inet", "machine_addrs4")) == 40


def test_every_rule_says_why_and_every_chain_is_hooked_or_jumped_to() -> None:
    text = isolation.render_ruleset(host())
    for line in text.splitlines():
        if line.startswith("    ") and not line.strip().startswith("type "):
            assert re.search(r' comment "[^"]+"$', line), line
    for chain in re.findall(r"chain (\w+) {\n(?!    type)", text):
        assert f"jump {chain} " in text


def test_the_order_of_decisions_in_forward_from_a_machine() -> None:
    """Services first (DNS at fdaa::3 is inside the protected ranges), then the
    own organization, then the refusals, then the rest of the world."""
    text = isolation.render_ruleset(host())
    chain = text[text.index("chain from_machine {") :].split("}", 1)[0]
    order = [rule.split(" comment")[0] for rule in rules(chain)]
    assert order == [
        "ip daddr . meta l4proto . th dport @services4 accept",
        "ip6 daddr . meta l4proto . th dport @services6 accept",
        "ip6 saddr . ip6 daddr @same_org accept",
        "ip6 daddr fdaa::/16 drop",
        "ip daddr @machine_addrs4 drop",
        "ip daddr @protected4 drop",
        "ip6 daddr @protected6 drop",
        "accept",
    ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (HostIsolation(machines=(machine('vm1" accept', 5, 1),)), "not valid"),
        (HostIsolation(machines=(machine("vm1", 5, 1), machine("vm1", 5, 2))), "named twice"),
        (HostIsolation(machines=(machine("a", 5, 1),), mesh_interfaces=("a",)), "named twice"),
        (
            HostIsolation(machines=(machine("a", 5, 1), machine("b", 5, 1))),
            "same IPv4",
        ),
        (
            HostIsolation(
                machines=(
                    MachinePort(
                        "a", ipaddress.IPv4Address("10.0.0.2"), sixpn.machine_address(5, 1, 1), 6
                    ),
                )
            ),
            "not of its organization's network 6",
        ),
        (
            HostIsolation(machines=(), services=(isolation.Service(sixpn.DNS_ADDRESS, "udp", 0),)),
            "out of range",
        ),
        (HostIsolation(machines=(), bridge="a-name-far-too-long"), "not valid"),
    ],
)
def test_a_host_that_would_make_a_wrong_ruleset_is_refused(
    bad: HostIsolation, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        isolation.render_ruleset(bad)


def test_a_machine_in_the_platforms_network_is_refused() -> None:
    infra_like = MachinePort("a", ipaddress.IPv4Address("10.0.0.2"), sixpn.infra_address(1), 0)
    with pytest.raises(ValidationError, match="network 0"):
        isolation.validate(HostIsolation(machines=(infra_like,)))


def test_in_the_embedded_cluster_edges_are_let_in_by_their_own_addresses_only() -> None:
    plan = plan_cluster("fy", 9, ["ams", "sin"], 2)
    sources = {str(n) for n in isolation.cluster_edge_sources(plan)}
    assert sources == {
        "fdaa::/48",
        "10.9.16.1/32",  # ams edge, towards its hosts
        "10.9.31.2/32",  # ams edge, towards other regions
        "10.9.32.1/32",
        "10.9.47.2/32",
    }
    machine_of_ams_1 = ipaddress.ip_address("10.9.17.2")
    assert not any(machine_of_ams_1 in n for n in isolation.cluster_edge_sources(plan))
    assert [str(n) for n in isolation.cluster_protected(plan)] == ["10.9.0.0/16"]
