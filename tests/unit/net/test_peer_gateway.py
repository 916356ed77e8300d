"""The peer gateway's pure parts: the address layout, the plan of peers, routes and rules."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from ferry.errors import ValidationError
from ferry.net import peer_gateway as gw
from ferry.net import sixpn
from ferry.net.mesh import WgPeer


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def peer(name: str, network: int, number: int, n: int, org: str = "acme") -> gw.GatewayPeer:
    return gw.GatewayPeer(
        name=name,
        org_slug=org,
        public_key=key(n),
        prefix=str(gw.peer_prefix(network, number)),
        org_prefix=str(sixpn.org_prefix(network)),
    )


def test_peer_addresses_are_in_their_org_and_never_a_machines() -> None:
    prefix = gw.peer_prefix(7, 1)
    assert prefix.prefixlen == 120 and prefix.subnet_of(sixpn.org_prefix(7))
    assert gw.peer_address(7, 1) in prefix and sixpn.parse(gw.peer_address(7, 1)).network == 7
    assert gw.peer_prefix(7, 1) != gw.peer_prefix(7, 2)
    # Machines live on hosts ≥ 1: no machine /112 of the org can hold a peer's address.
    machine = sixpn.SixpnAddress(7, 1, 1)
    assert not prefix.overlaps(machine.prefix)
    assert not prefix.overlaps(sixpn.host_prefix(7, 1))
    assert gw.org_resolver(7) == ipaddress.IPv6Address("fdaa:0:7::3")
    assert gw.org_resolver(7) not in prefix
    with pytest.raises(ValidationError):
        gw.peer_prefix(0, 1)  # the platform's network has no peers
    with pytest.raises(ValidationError):
        gw.peer_prefix(7, 0)


def test_the_gateway_listens_beside_the_mesh_port() -> None:
    assert gw.gateway_endpoint("192.0.2.1:51820") == "192.0.2.1:51821"
    assert gw.gateway_endpoint("[2001:db8::1]:51820") == "[2001:db8::1]:51821"
    with pytest.raises(ValidationError):
        gw.gateway_port("192.0.2.1:65535")
    assert gw.gateway_interface_name("fy1", 10) == "fy1ga"


def test_the_plan_adds_each_peer_with_its_slash_120_and_routes_it() -> None:
    peers = [peer("laptop", 7, 1, 1), peer("desk", 8, 1, 2, org="globex")]
    plan = gw.plan_gateway(key(9), peers, [], ifname="fyg1")
    assert [(c.action, c.public_key, c.allowed_ips) for c in plan.changes] == [
        ("add", key(1), (str(gw.peer_prefix(7, 1)),)),
        ("add", key(2), (str(gw.peer_prefix(8, 1)),)),
    ]
    assert all(c.endpoint is None for c in plan.changes)  # peers dial the gateway
    assert set(plan.routes) == {str(gw.peer_prefix(7, 1)), str(gw.peer_prefix(8, 1))}
    assert plan.refused == ()

    current = [WgPeer(key(1), "198.51.100.7:40000", (str(gw.peer_prefix(7, 1)),))]
    again = gw.plan_gateway(key(9), peers[:1], current, ifname="fyg1")
    assert again.changes == ()  # a peer's roaming endpoint is not a change
    gone = gw.plan_gateway(key(9), [], current, ifname="fyg1")
    assert [c.action for c in gone.changes] == ["remove"] and gone.routes == ()


def test_the_rules_let_a_peer_reach_only_its_org_and_the_resolver() -> None:
    peers = [peer("laptop", 7, 1, 1), peer("desk", 8, 1, 2, org="globex")]
    rules = gw.plan_gateway(key(9), peers, [], ifname="fyg1").ruleset
    laptop = gw.peer_prefix(7, 1)
    assert f'iifname "fyg1" ip6 saddr {laptop} ip6 daddr fdaa:0:7::/48 accept' in rules
    assert f'oifname "fyg1" ip6 saddr fdaa:0:7::/48 ip6 daddr {laptop} accept' in rules
    assert f"ip6 saddr {laptop} ip6 daddr fdaa:0:8::/48" not in rules
    assert (
        f'iifname "fyg1" ip6 saddr {laptop} ip6 daddr fdaa:0:7::3 '
        "meta l4proto { tcp, udp } th dport 53 dnat ip6 to fdaa::3"
    ) in rules
    # Whatever is not allowed above, in or out of the interface, is dropped.
    assert rules.count('iifname "fyg1" drop') == 2 and 'oifname "fyg1" drop' in rules
    assert rules.startswith("table inet ferry_peers\ndelete table inet ferry_peers\n")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (
            gw.GatewayPeer("x", "acme", key(3), str(gw.peer_prefix(8, 1)), "fdaa:0:7::/48"),
            "not a peer /120",
        ),
        (
            gw.GatewayPeer("x", "acme", key(3), "fdaa:0:7:0:1::/112", "fdaa:0:7::/48"),
            "not a peer /120",
        ),
        (
            gw.GatewayPeer("x", "acme", key(3), "fdaa::1:0:0/120", "fdaa::/48"),
            "not an organization",
        ),
        (
            gw.GatewayPeer("x", "acme", "short", str(gw.peer_prefix(7, 3)), "fdaa:0:7::/48"),
            "not base64",
        ),
        (
            gw.GatewayPeer("x", "acme", key(1), str(gw.peer_prefix(7, 3)), "fdaa:0:7::/48"),
            "already",
        ),
    ],
)
def test_a_peer_outside_its_org_or_with_a_taken_key_is_refused_and_gets_no_rule(
    bad: gw.GatewayPeer, says: str
) -> None:
    good = peer("laptop", 7, 1, 1)
    plan = gw.plan_gateway(key(9), [good, bad], [], ifname="fyg1")
    assert [r.node_id for r in plan.refused] == ["acme/x"] and says in plan.refused[0].reason
    assert [c.public_key for c in plan.changes] == [key(1)]
    assert bad.prefix not in plan.ruleset and plan.routes == (good.prefix,)
