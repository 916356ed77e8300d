"""The mesh's pure core: desired peers vs the interface's peers → changes, refusals, routes."""

from __future__ import annotations

import base64

from ferry.net.mesh import MeshPeer, MeshSelf, WgPeer, plan_mesh
from ferry.net.sixpn import SixpnAddress, infra_address, machine_address


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def slash112(network: int, host: int, machine: int) -> str:
    return str(SixpnAddress(network, host, machine).prefix)


def infra(host: int) -> str:
    return f"{infra_address(host)}/128"


ME = MeshSelf("h1", key(1), "10.0.0.1:51820", (infra(1), slash112(7, 1, 1)))


def host(n: int, *machines: tuple[int, int], endpoint: str | None = None) -> MeshPeer:
    ips = (infra(n), *(slash112(net, n, m) for net, m in machines))
    return MeshPeer(f"h{n}", key(n), endpoint or f"10.0.0.{n}:51820", ips)


def as_configured(peer: MeshPeer) -> WgPeer:
    return WgPeer(peer.public_key, peer.endpoint, peer.allowed_ips, peer.keepalive)


def test_new_hosts_are_added_with_their_prefixes_and_routed() -> None:
    h2, h3 = host(2, (7, 2), (7, 3)), host(3, (8, 1))
    plan = plan_mesh(ME, [h2, h3], [])
    assert [(c.action, c.public_key) for c in plan.changes] == [("add", key(2)), ("add", key(3))]
    assert plan.changes[0].reason == "add h2: 10.0.0.2:51820, 3 prefixes"
    assert plan.changes[0].allowed_ips == h2.allowed_ips
    assert plan.refused == ()
    routed = set(plan.routes)
    assert infra(2) in routed and slash112(8, 3, 1) in routed
    # two neighbouring /112s of one host collapse into one route
    assert str(SixpnAddress(7, 2, 2).prefix.supernet()) in routed
    assert slash112(7, 2, 2) not in routed


def test_a_mesh_as_configured_needs_no_change() -> None:
    peers = [host(2, (7, 1)), host(3)]
    plan = plan_mesh(ME, peers, [as_configured(p) for p in peers])
    assert plan.changes == ()
    assert plan.refused == ()


def test_moved_endpoint_new_machine_and_keepalive_are_one_update_with_a_reason() -> None:
    old = host(2, (7, 1))
    new = MeshPeer("h2", key(2), "10.9.0.2:51820", (*old.allowed_ips, slash112(7, 2, 2)), 25)
    (change,) = plan_mesh(ME, [new], [as_configured(old)]).changes
    assert change.action == "update"
    assert change.reason == (
        "update h2: endpoint 10.0.0.2:51820 → 10.9.0.2:51820, allowed IPs +1 -0, keepalive 0s → 25s"
    )
    assert change.allowed_ips == new.allowed_ips and change.keepalive == 25


def test_a_peer_that_dials_us_keeps_the_endpoint_it_was_seen_at() -> None:
    behind_nat = MeshPeer("h4", key(4), None, (infra(4),), keepalive=0)
    seen = WgPeer(key(4), "192.0.2.7:40112", (infra(4),))
    assert plan_mesh(ME, [behind_nat], [seen]).changes == ()


def test_hosts_gone_from_the_mesh_are_removed() -> None:
    h2, h3 = host(2), host(3)
    (change,) = plan_mesh(ME, [h2], [as_configured(h2), as_configured(h3)]).changes
    assert (change.action, change.public_key) == ("remove", key(3))
    assert "not in the mesh" in change.reason
    assert infra(3) not in plan_mesh(ME, [h2], [as_configured(h3)]).routes


def test_self_as_a_peer_is_refused_by_id_key_or_endpoint() -> None:
    by_id = MeshPeer("h1", key(9), "10.0.0.9:51820", ())
    by_key = MeshPeer("h9", key(1), "10.0.0.9:51820", ())
    by_endpoint = MeshPeer("h8", key(8), "10.0.0.1:51820", ())
    plan = plan_mesh(ME, [by_id, by_key, by_endpoint], [])
    assert plan.changes == ()
    reasons = [r.reason for r in plan.refused]
    assert reasons == [
        "peer h1 refused: it is this host itself",
        "peer h9 refused: its public key is already this host's",
        "peer h8 refused: endpoint 10.0.0.1:51820 is already this host's",
    ]


def test_a_key_or_endpoint_already_taken_is_refused_and_the_first_node_keeps_it() -> None:
    h2 = host(2)
    thief_key = MeshPeer("h5", key(2), "10.0.0.5:51820", (infra(5),))
    thief_endpoint = MeshPeer("h6", key(6), "10.0.0.2:51820", (infra(6),))
    plan = plan_mesh(ME, [h2, thief_key, thief_endpoint], [])
    assert [c.public_key for c in plan.changes] == [key(2)]
    assert [r.reason for r in plan.refused] == [
        "peer h5 refused: its public key is already h2's",
        "peer h6 refused: endpoint 10.0.0.2:51820 is already h2's",
    ]
    assert infra(5) not in plan.routes and infra(6) not in plan.routes


def test_overlapping_allowed_ips_are_refused_whichever_side_is_wider() -> None:
    h2 = host(2, (7, 1))
    wider = MeshPeer("h3", key(3), "10.0.0.3:51820", ("fdaa:0:7::/48",))
    narrower = MeshPeer("h4", key(4), "10.0.0.4:51820", (f"{machine_address(7, 2, 1)}/128",))
    local = MeshPeer("h5", key(5), "10.0.0.5:51820", (slash112(7, 1, 1),))
    plan = plan_mesh(ME, [h2, wider, narrower, local], [])
    assert [c.public_key for c in plan.changes] == [key(2)]
    reasons = [r.reason for r in plan.refused]
    assert reasons[0].startswith("peer h3 refused: allowed IP fdaa:0:7::/48 overlaps")
    assert reasons[1].endswith("overlaps h2's addresses")
    assert reasons[2].endswith("overlaps this host (local)'s addresses")
    assert slash112(7, 1, 1) not in plan.routes  # the host's own machines stay local


def test_malformed_peers_are_refused_with_what_is_wrong() -> None:
    bad = [
        MeshPeer("a", "not-a-key!", "10.0.0.9:1", ()),
        MeshPeer("b", base64.b64encode(b"short").decode(), "10.0.0.9:1", ()),
        MeshPeer("c", key(11), "example.com:51820", ()),
        MeshPeer("d", key(12), "10.0.0.9", ()),
        MeshPeer("e", key(13), "fd00::1:51820", ()),
        MeshPeer("f", key(14), "10.0.0.14:51820", ("0.0.0.0/0",)),
        MeshPeer("g", key(15), "10.0.0.15:51820", ("fdaa::1/64",)),
        MeshPeer("h", key(16), "10.0.0.16:51820", ("fd00::/64",)),
        MeshPeer("h2", key(2), "10.0.0.2:51820", (), keepalive=70000),
    ]
    plan = plan_mesh(ME, bad, [])
    assert plan.changes == () and plan.routes == ()
    reasons = [r.reason.split(": ", 1)[1] for r in plan.refused]
    assert reasons == [
        "public key 'not-a-key!'… is not base64",
        "public key is 5 bytes, WireGuard keys are 32",
        "endpoint 'example.com:51820' does not start with a literal IP address (no names)",
        "endpoint '10.0.0.9' is not ip:port (port 1..65535)",
        "endpoint 'fd00::1:51820': write IPv6 endpoints as [address]:port",
        "allowed IP 0.0.0.0/0 is outside 6PN (fdaa::/16)",
        "allowed IP 'fdaa::1/64' is not a CIDR with its host bits clear",
        "allowed IP fd00::/64 is outside 6PN (fdaa::/16)",
        "keepalive 70000 is out of range 0..65535",
    ]


def test_a_refused_update_leaves_the_configured_peer_as_it_was() -> None:
    h2, h3 = host(2, (7, 1)), host(3)
    grabbing = MeshPeer("h3", key(3), "10.0.0.3:51820", (infra(3), slash112(7, 2, 1)))
    plan = plan_mesh(ME, [h2, grabbing], [as_configured(h2), as_configured(h3)])
    assert plan.changes == ()  # not updated, and not removed either
    assert [r.node_id for r in plan.refused] == ["h3"]
    assert infra(3) in plan.routes  # its current prefixes stay routed


def test_a_node_listed_twice_is_refused_the_second_time() -> None:
    plan = plan_mesh(ME, [host(2), MeshPeer("h2", key(9), "10.0.0.9:51820", ())], [])
    assert [c.public_key for c in plan.changes] == [key(2)]
    assert [r.reason for r in plan.refused] == ["peer h2 refused: listed twice"]


def test_ipv6_endpoints_are_accepted_in_brackets() -> None:
    peer = MeshPeer("h2", key(2), "[fd00::2]:51820", (infra(2),))
    (change,) = plan_mesh(ME, [peer], []).changes
    assert change.endpoint == "[fd00::2]:51820"
