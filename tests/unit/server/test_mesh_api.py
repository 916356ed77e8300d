"""The mesh registry through the real API: hosts and edges announce their WireGuard
keys, read each other back with what they carry, and bad announcements change nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ferry.net import sixpn

from .conftest import Api, bearer, mint_token


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


def host_token(api: Api, host_id: str, region: str) -> dict[str, str]:
    token = mint_token(
        api, "test-admin-token", kind="host", host_id=host_id, region=region, name=host_id
    )
    return bearer(token)


def edge_token(api: Api, region: str) -> dict[str, str]:
    return bearer(mint_token(api, "test-admin-token", kind="edge", region=region, name=region))


def announce(api: Api, who: dict[str, str], path: str, public_key: str, endpoint: str) -> Any:
    return api.client.put(
        f"/v1/{path}/mesh", json={"public_key": public_key, "endpoint": endpoint}, headers=who
    )


@pytest.fixture
def two_hosts(api: Api) -> dict[str, dict[str, str]]:
    api.register_host("ams-1", "ams")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    return {"ams-1": host_token(api, "ams-1", "ams"), "sin-1": host_token(api, "sin-1", "sin")}


def test_hosts_and_an_edge_announce_and_every_node_reads_the_others(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    ams = announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820")
    assert ams.status_code == 200, ams.text
    assert ams.json()["address"] == "fdaa::1:0:0:1"
    assert ams.json()["allowed_ips"] == ["fdaa::1:0:0:1/128"]
    assert announce(api, two_hosts["sin-1"], "hosts/sin-1", key(2), "10.0.1.2:51820").is_success
    edge = announce(api, edge_token(api, "ams"), "edges/ams", key(3), "10.0.0.1:51821")
    assert edge.status_code == 200 and edge.json()["kind"] == "edge"

    seen = api.client.get("/v1/mesh", headers=two_hosts["sin-1"]).json()
    assert [(n["id"], n["public_key"]) for n in seen["nodes"]] == [
        ("ams-1", key(1)),
        ("sin-1", key(2)),
        ("edge-ams", key(3)),
    ]
    assert len({n["address"] for n in seen["nodes"]}) == 3
    assert "private" not in str(seen).lower()


def test_announcing_again_keeps_the_address_and_a_new_endpoint_wakes_the_long_poll(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    first = announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820").json()
    version = api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json()["version"]
    same = announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820").json()
    assert same["address"] == first["address"]
    unchanged = api.client.get(f"/v1/mesh?since={version}&timeout=0", headers=two_hosts["ams-1"])
    assert unchanged.json()["version"] == version
    moved = announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.9:51820").json()
    assert moved["address"] == first["address"] and moved["endpoint"] == "10.0.0.9:51820"
    after = api.client.get(f"/v1/mesh?since={version}&timeout=5", headers=two_hosts["ams-1"])
    assert after.json()["version"] != version


def test_a_key_or_endpoint_another_node_holds_is_409_and_changes_nothing(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    assert announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820").is_success
    before = api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json()
    stolen_key = announce(api, two_hosts["sin-1"], "hosts/sin-1", key(1), "10.0.1.2:51820")
    assert stolen_key.status_code == 409 and "ams-1" in stolen_key.text
    stolen_endpoint = announce(api, two_hosts["sin-1"], "hosts/sin-1", key(2), "10.0.0.2:51820")
    assert stolen_endpoint.status_code == 409 and "10.0.0.2:51820" in stolen_endpoint.text
    assert api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json() == before


@pytest.mark.parametrize(
    ("public_key", "endpoint", "named"),
    [
        ("not-base64!", "10.0.0.2:51820", "not base64"),
        (base64.b64encode(b"short").decode(), "10.0.0.2:51820", "WireGuard keys are 32"),
        (key(1), "10.0.0.2", "port"),
        (key(1), "host.example:51820", "literal IP address"),
        (key(1), "0.0.0.0:51820", "not an address a peer can send to"),
        (key(1), "10.0.0.2:70000", "port"),
    ],
)
def test_bad_announcements_are_400_naming_the_problem(
    api: Api, two_hosts: dict[str, dict[str, str]], public_key: str, endpoint: str, named: str
) -> None:
    answer = announce(api, two_hosts["ams-1"], "hosts/ams-1", public_key, endpoint)
    assert answer.status_code in (400, 422) and named in answer.text
    assert api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json()["nodes"] == []


def test_only_hosts_edges_and_the_operator_touch_the_mesh(
    api: Api, two_hosts: dict[str, dict[str, str]], two_orgs: dict[str, str]
) -> None:
    user = bearer(two_orgs["alice"])
    assert api.client.get("/v1/mesh", headers=user).status_code == 403
    assert announce(api, user, "hosts/ams-1", key(1), "10.0.0.2:51820").status_code == 404
    other_host = announce(api, two_hosts["sin-1"], "hosts/ams-1", key(1), "10.0.0.2:51820")
    assert other_host.status_code == 404
    wrong_edge = announce(api, edge_token(api, "sin"), "edges/ams", key(4), "10.0.0.1:51821")
    assert wrong_edge.status_code == 403
    unknown = announce(api, edge_token(api, "syd"), "edges/syd", key(4), "10.0.0.1:51821")
    assert unknown.status_code == 404 and "syd" in unknown.text
    assert api.client.get("/v1/mesh").status_code == 200  # the operator's default header


def test_a_hosts_node_carries_its_machines_and_a_new_machine_wakes_the_long_poll(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    assert announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820").is_success
    before = api.client.get("/v1/mesh", headers=two_hosts["sin-1"]).json()
    assert api.client.post("/v1/apps", json={"app_name": "web"}).status_code == 201
    machine = api.create_machine("web", region="ams")
    after = api.client.get(
        f"/v1/mesh?since={before['version']}&timeout=5", headers=two_hosts["sin-1"]
    ).json()
    ams = next(n for n in after["nodes"] if n["id"] == "ams-1")
    assert after["version"] != before["version"]
    address = sixpn.parse(machine["private_ip"])
    assert str(sixpn.host_prefix(address.network, address.host)) in ams["allowed_ips"]


def test_more_machines_of_an_organization_on_a_host_change_no_peer(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    """The host already carries the organization's /80: nodes are not woken for it."""
    assert announce(api, two_hosts["ams-1"], "hosts/ams-1", key(1), "10.0.0.2:51820").is_success
    assert api.client.post("/v1/apps", json={"app_name": "web"}).status_code == 201
    api.create_machine("web", region="ams")
    before = api.client.get("/v1/mesh", headers=two_hosts["sin-1"]).json()
    second = api.create_machine("web", region="ams")
    after = api.client.get(
        f"/v1/mesh?since={before['version']}&timeout=0.3", headers=two_hosts["sin-1"]
    ).json()
    assert second["private_ip"] != ""
    assert after == before


def _fast_plan(targets: list[str], address: str | None = None) -> dict[str, Any]:
    from ferry.net.flycast import flycast_address

    port = {
        "address": address or str(flycast_address(7, 1)),
        "port": 5432,
        "organization": str(sixpn.org_prefix(7)),
        "targets": targets,
        "target_port": 5433,
        "app": "db",
    }
    return {"ports": [port]}


def test_an_edge_publishes_its_kernel_path_and_every_node_reads_it(
    api: Api, two_hosts: dict[str, dict[str, str]]
) -> None:
    """Each region edge's plan rides in the snapshot; the long poll wakes only when it
    changes; another region's edge, a host and a bad plan change nothing."""
    before = api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json()
    assert before["fast"] == []
    target = str(sixpn.machine_address(7, 1, 1))
    edge = edge_token(api, "ams")
    put = api.client.put("/v1/edges/ams/flycast-fast", json=_fast_plan([target]), headers=edge)
    assert put.status_code == 200, put.text
    since = before["version"]
    seen = api.client.get(f"/v1/mesh?since={since}&timeout=5", headers=two_hosts["ams-1"])
    (plan,) = seen.json()["fast"]
    assert plan["region"] == "ams" and plan["ports"][0]["targets"] == [target]
    version = seen.json()["version"]
    again = api.client.put("/v1/edges/ams/flycast-fast", json=_fast_plan([target]), headers=edge)
    assert again.status_code == 200
    quiet = api.client.get(f"/v1/mesh?since={version}&timeout=0", headers=two_hosts["ams-1"])
    assert quiet.json()["version"] == version  # the same plan again moves nothing

    other = edge_token(api, "sin")
    assert (
        api.client.put("/v1/edges/ams/flycast-fast", json=_fast_plan([]), headers=other).status_code
        == 403
    )
    assert (
        api.client.put(
            "/v1/edges/ams/flycast-fast", json=_fast_plan([]), headers=two_hosts["ams-1"]
        ).status_code
        == 403
    )
    foreign = str(sixpn.machine_address(8, 1, 1))
    bad = api.client.put("/v1/edges/ams/flycast-fast", json=_fast_plan([foreign]), headers=edge)
    assert bad.status_code == 400 and "is not a machine of" in bad.text, bad.text
    after = api.client.get("/v1/mesh", headers=two_hosts["ams-1"]).json()
    assert after["fast"] == seen.json()["fast"] and after["version"] == version
