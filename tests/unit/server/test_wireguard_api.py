"""Developers' WireGuard peers through the real API: a member adds a peer with its public
key and gets an address in its organization's 6PN and its region's gateway; refusals
change nothing; the gateway and the mesh see the peer; DNS can list it."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest

from ferry.net import sixpn
from ferry.server.internal_feed import read_feed

from .conftest import Api, bearer, mint_token, org_with_admin

GATEWAY_KEY = base64.b64encode(bytes([9]) * 32).decode()


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


@pytest.fixture
def gateway(api: Api) -> dict[str, str]:
    """Region ams with a host and an edge on the mesh (the gateway); sin with a host only."""
    api.register_host("ams-1", "ams")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    edge = bearer(mint_token(api, "test-admin-token", kind="edge", region="ams", name="ams"))
    announced = api.client.put(
        "/v1/edges/ams/mesh",
        json={"public_key": GATEWAY_KEY, "endpoint": "10.9.0.1:51820"},
        headers=edge,
    )
    assert announced.status_code == 200, announced.text
    return edge


def create(api: Api, who: dict[str, str], org: str, **body: Any) -> Any:
    return api.client.post(f"/v1/orgs/{org}/wireguard-peers", json=body, headers=who)


def test_a_member_adds_a_peer_and_gets_an_address_of_its_org_and_the_gateway(
    api: Api, two_orgs: dict[str, str], gateway: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    made = create(api, alice, "acme", name="laptop", region="ams", public_key=key(1))
    assert made.status_code == 201, made.text
    peer = made.json()
    address = ipaddress.IPv6Address(peer["address"])
    org = ipaddress.IPv6Network(peer["org_prefix"])
    assert address in org and org.prefixlen == 48
    assert address in ipaddress.IPv6Network(peer["prefix"]) and peer["prefix"].endswith("/120")
    assert sixpn.parse(address).host == 0  # never a machine's host
    assert peer["dns"] == str(org.network_address + 3)
    assert peer["gateway_public_key"] == GATEWAY_KEY
    assert peer["gateway_endpoint"] == "10.9.0.1:51821"
    assert "private" not in str(peer).lower()

    second = create(api, alice, "acme", name="desktop", public_key=key(2)).json()
    assert second["region"] == "ams"  # the only region with a gateway
    assert second["address"] != peer["address"]
    bobs = create(api, bearer(two_orgs["bob"]), "globex", name="laptop", public_key=key(3)).json()
    assert ipaddress.IPv6Address(bobs["address"]) not in org

    listed = api.client.get("/v1/orgs/acme/wireguard-peers", headers=alice).json()
    assert [p["name"] for p in listed] == ["desktop", "laptop"]
    acme = sixpn.parse(address).network
    assert read_feed(api.plane.store).peers[acme] == {
        "desktop": ipaddress.IPv6Address(second["address"]),
        "laptop": address,
    }


def test_the_gateway_reads_its_peers_and_the_mesh_routes_them_to_it(
    api: Api, two_orgs: dict[str, str], gateway: dict[str, str]
) -> None:
    peer = create(api, bearer(two_orgs["alice"]), "acme", name="laptop", public_key=key(1)).json()
    seen = api.client.get("/v1/edges/ams/wireguard-peers", headers=gateway)
    assert seen.status_code == 200, seen.text
    assert [(p["name"], p["public_key"], p["prefix"]) for p in seen.json()] == [
        ("laptop", key(1), peer["prefix"])
    ]
    other = api.client.get("/v1/edges/sin/wireguard-peers", headers=gateway)
    assert other.status_code == 403
    host = bearer(
        mint_token(api, "test-admin-token", kind="host", host_id="sin-1", region="sin", name="h")
    )
    nodes = api.client.get("/v1/mesh", headers=host).json()["nodes"]
    edge = next(n for n in nodes if n["id"] == "edge-ams")
    assert peer["prefix"] in edge["allowed_ips"]

    removed = api.client.delete(
        "/v1/orgs/acme/wireguard-peers/laptop", headers=bearer(two_orgs["alice"])
    )
    assert removed.status_code == 200
    assert api.client.get("/v1/edges/ams/wireguard-peers", headers=gateway).json() == []
    nodes = api.client.get("/v1/mesh", headers=host).json()["nodes"]
    assert peer["prefix"] not in next(n for n in nodes if n["id"] == "edge-ams")["allowed_ips"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "laptop", "public_key": key(7)}, 409, "already has a WireGuard peer named"),
        ({"name": "other", "public_key": key(1)}, 409, "already another WireGuard peer's"),
        ({"name": "other", "public_key": "not-a-key"}, 400, "not base64"),
        ({"name": "other", "public_key": base64.b64encode(b"x" * 16).decode()}, 400, "32"),
        ({"name": "other", "public_key": GATEWAY_KEY}, 400, "mesh node's key"),
        ({"name": "Bad_Name", "public_key": key(7)}, 400, "not a DNS label"),
        ({"name": "other", "region": "sin", "public_key": key(7)}, 404, "no WireGuard gateway"),
        ({"name": "other", "region": "nowhere", "public_key": key(7)}, 404, "no WireGuard gateway"),
    ],
)
def test_refusals_are_clear_and_change_nothing(
    api: Api,
    two_orgs: dict[str, str],
    gateway: dict[str, str],
    body: dict[str, str],
    status: int,
    says: str,
) -> None:
    alice = bearer(two_orgs["alice"])
    assert create(api, alice, "acme", name="laptop", public_key=key(1)).status_code == 201
    before = api.client.get("/v1/orgs/acme/wireguard-peers", headers=alice).json()
    mesh_before = api.client.get("/v1/mesh", headers={}).json()
    refused = create(api, alice, "acme", **body)
    assert refused.status_code == status, refused.text
    assert says in refused.text
    assert api.client.get("/v1/orgs/acme/wireguard-peers", headers=alice).json() == before
    assert api.client.get("/v1/mesh", headers={}).json() == mesh_before


def test_another_organization_is_404_and_a_readonly_token_only_reads(
    api: Api, two_orgs: dict[str, str], gateway: dict[str, str]
) -> None:
    alice, bob = bearer(two_orgs["alice"]), bearer(two_orgs["bob"])
    assert create(api, alice, "acme", name="laptop", public_key=key(1)).status_code == 201
    for answer in (
        create(api, bob, "acme", name="sneaky", public_key=key(5)),
        api.client.get("/v1/orgs/acme/wireguard-peers", headers=bob),
        api.client.delete("/v1/orgs/acme/wireguard-peers/laptop", headers=bob),
    ):
        assert answer.status_code == 404 and "organization 'acme' not found" in answer.text
    reader = bearer(mint_token(api, two_orgs["alice"], kind="readonly", org_slug="acme"))
    assert api.client.get("/v1/orgs/acme/wireguard-peers", headers=reader).status_code == 200
    assert create(api, reader, "acme", name="mine", public_key=key(6)).status_code == 403
    missing = api.client.delete("/v1/orgs/acme/wireguard-peers/nope", headers=alice)
    assert missing.status_code == 404 and "no WireGuard peer named 'nope'" in missing.text
    names = [
        p["name"] for p in api.client.get("/v1/orgs/acme/wireguard-peers", headers=alice).json()
    ]
    assert names == ["laptop"]


def test_a_hosts_dns_feed_serves_the_peers_of_orgs_with_machines_there(
    api: Api, two_orgs: dict[str, str], gateway: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    machine = api.client.post(
        "/v1/apps/rocket/machines",
        json={"config": {"image": "registry.local/rocket:1"}, "region": "ams"},
        headers=alice,
    )
    assert machine.status_code == 200, machine.text
    host = bearer(
        mint_token(api, "test-admin-token", kind="host", host_id="ams-1", region="ams", name="h")
    )
    before = api.client.get("/v1/hosts/ams-1/internal", headers=host)
    version = before.headers["Ferry-Version"]
    peer = create(api, alice, "acme", name="laptop", public_key=key(1)).json()
    create(api, bearer(two_orgs["bob"]), "globex", name="bobs", public_key=key(2))
    after = api.client.get(f"/v1/hosts/ams-1/internal?since={version}&timeout=5", headers=host)
    assert after.headers["Ferry-Version"] != version  # the feed moved with the new peer
    peers = after.json()["peers"]
    assert list(peers.values()) == [{"laptop": peer["address"]}]  # globex has no machine there


def test_an_organizations_peers_go_with_it(
    api: Api, two_orgs: dict[str, str], gateway: dict[str, str]
) -> None:
    initech = org_with_admin(api, "initech", "peter@initech.test")
    made = create(api, bearer(initech), "initech", name="laptop", public_key=key(4)).json()
    assert api.client.delete("/v1/orgs/initech", headers=bearer(initech)).status_code == 200
    assert api.client.get("/v1/edges/ams/wireguard-peers", headers=gateway).json() == []
    nodes = api.client.get("/v1/mesh").json()["nodes"]
    assert made["prefix"] not in next(n for n in nodes if n["id"] == "edge-ams")["allowed_ips"]
    # An organization created later under the slug starts without them.
    again = org_with_admin(api, "initech", "mallory@initech.test")
    assert api.client.get("/v1/orgs/initech/wireguard-peers", headers=bearer(again)).json() == []
