"""Flycast addresses through the real API (Fly's ``ip_assignments`` shapes): an app's
member allocates, lists and releases them; refusals name the field and change nothing;
the edges read them, the mesh routes them to the edges, DNS answers them to the owner."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest

from ferry.net import sixpn
from ferry.net.flycast import FLYCAST_HOST, flycast_prefix
from ferry.net.internal_records import InternalRecords

from .conftest import Api, bearer, mint_token

IPS = "/v1/apps/{}/ip_assignments"


def assign(api: Api, who: dict[str, str], app: str = "rocket", **body: Any) -> Any:
    body.setdefault("type", "private_v6")
    return api.client.post(IPS.format(app), json=body, headers=who)


def listed(api: Api, who: dict[str, str], app: str = "rocket") -> list[str]:
    answer = api.client.get(IPS.format(app), headers=who)
    assert answer.status_code == 200, answer.text
    return [ip["ip"] for ip in answer.json()["ips"]]


def test_a_member_allocates_lists_and_releases_flycast_addresses(
    api: Api, two_orgs: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    made = assign(api, alice)
    assert made.status_code == 201, made.text
    ip = made.json()
    address = ipaddress.IPv6Address(ip["ip"])
    acme = api.plane.store.get_org("acme").sixpn_network
    assert address in sixpn.org_prefix(acme) and address in flycast_prefix(acme)
    assert sixpn.parse(address).host == FLYCAST_HOST  # never a machine's or a peer's host
    assert ip["type"] == "private_v6" and ip["region"] == "global" and ip["shared"] is False
    assert ip["network"] == {"name": "", "org_slug": "acme"}

    second = assign(api, alice, org_slug="acme", network="default").json()["ip"]
    assert second != ip["ip"]
    assert listed(api, alice) == [ip["ip"], second]
    bobs = assign(api, bearer(two_orgs["bob"]), "widget").json()["ip"]
    assert ipaddress.IPv6Address(bobs) not in sixpn.org_prefix(acme)

    released = api.client.delete(f"{IPS.format('rocket')}/{ip['ip']}", headers=alice)
    assert released.status_code == 200 and released.json()["ip"] == ip["ip"]
    assert listed(api, alice) == [second]
    again = assign(api, alice).json()["ip"]
    assert again == ip["ip"]  # the lowest free number is given again

    trail = api.client.get("/v1/orgs/acme/audit", headers=alice).json()
    routes = [(r["method"], r["route"]) for r in trail]
    assert ("POST", "/v1/apps/{app_name}/ip_assignments") in routes
    assert ("DELETE", "/v1/apps/{app_name}/ip_assignments/{ip}") in routes


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"type": "v4"}, 400, "no public addresses"),
        ({"type": "v6"}, 400, "no public addresses"),
        ({"type": "shared_v4"}, 400, "no public addresses"),
        ({"type": "egress_v4"}, 400, "not an address type"),
        ({"org_slug": "globex"}, 400, "belongs to 'acme'"),
        ({"network": "blue"}, 400, "custom 6PN networks"),
        ({"region": "ams"}, 400, "global"),
        ({"service_name": "web"}, 400, "service_name"),
        ({"colour": "red"}, 400, "colour"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(
    api: Api, two_orgs: dict[str, str], body: dict[str, Any], status: int, says: str
) -> None:
    alice = bearer(two_orgs["alice"])
    answer = assign(api, alice, **body)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert listed(api, alice) == []


def test_release_refusals_and_other_orgs(api: Api, two_orgs: dict[str, str]) -> None:
    alice, bob = bearer(two_orgs["alice"]), bearer(two_orgs["bob"])
    ip = assign(api, alice).json()["ip"]
    assert api.client.delete(f"{IPS.format('rocket')}/nonsense", headers=alice).status_code == 400
    unknown = api.client.delete(f"{IPS.format('rocket')}/fdaa:0:9:ffff:ffff::9", headers=alice)
    assert unknown.status_code == 404 and "has no IP address" in unknown.text
    # Another organization's member sees no such app, and cannot touch its address.
    assert api.client.get(IPS.format("rocket"), headers=bob).status_code == 404
    assert assign(api, bob).status_code == 404
    assert api.client.delete(f"{IPS.format('rocket')}/{ip}", headers=bob).status_code == 404
    assert listed(api, alice) == [ip]


def test_the_edges_serve_them_and_the_mesh_and_dns_follow(
    api: Api, two_orgs: dict[str, str]
) -> None:
    api.register_host("ams-1", "ams")
    edge = bearer(mint_token(api, "test-admin-token", kind="edge", region="ams", name="ams"))
    host = bearer(
        mint_token(api, "test-admin-token", kind="host", host_id="ams-1", region="ams", name="h")
    )
    key = base64.b64encode(bytes([9]) * 32).decode()
    announced = api.client.put(
        "/v1/edges/ams/mesh", json={"public_key": key, "endpoint": "10.9.0.1:51820"}, headers=edge
    )
    assert announced.status_code == 200, announced.text
    alice = bearer(two_orgs["alice"])
    before = api.client.get("/v1/edges/ams/flycast", headers=edge).json()
    assert before["addresses"] == []
    ip = assign(api, alice).json()["ip"]

    woken = api.client.get(
        f"/v1/edges/ams/flycast?since={before['version']}&timeout=5", headers=edge
    ).json()
    assert woken["version"] != before["version"]
    assert woken["addresses"] == [
        {
            "address": ip,
            "app": "rocket",
            "network": api.plane.store.get_org("acme").sixpn_network,
            "org_slug": "acme",
        }
    ]
    assert api.client.get("/v1/edges/ams/flycast", headers=alice).status_code == 403

    mesh = api.client.get("/v1/mesh", headers=host).json()
    acme = api.plane.store.get_org("acme").sixpn_network
    assert mesh["flycast"] == [str(flycast_prefix(acme))]

    api.create_machine("rocket", region="ams")  # acme now has a machine on ams-1
    records = InternalRecords.from_json(
        api.client.get("/v1/hosts/ams-1/internal", headers=host).text
    )
    assert records.flycast_of(acme, "rocket") == (ipaddress.IPv6Address(ip),)
    globex = api.plane.store.get_org("globex").sixpn_network
    assert records.flycast_of(globex, "rocket") == ()

    api.client.delete(f"{IPS.format('rocket')}/{ip}", headers=alice)
    assert api.client.get("/v1/edges/ams/flycast", headers=edge).json()["addresses"] == []
    assert api.client.get("/v1/mesh", headers=host).json()["flycast"] == []


def test_deleting_the_app_releases_its_addresses(api: Api, two_orgs: dict[str, str]) -> None:
    alice = bearer(two_orgs["alice"])
    assign(api, alice)
    assert api.client.delete("/v1/apps/rocket", headers=alice).status_code in (200, 202, 204)
    assert api.plane.store.list_flycast_ips() == []


def test_a_moved_apps_old_addresses_are_no_longer_served(
    api: Api, two_orgs: dict[str, str]
) -> None:
    ip = assign(api, bearer(two_orgs["alice"])).json()["ip"]
    moved = api.client.post("/v1/apps/rocket/move", json={"org_slug": "globex"})
    assert moved.status_code == 200, moved.text
    assert api.plane.flycast.feed(1).addresses == []  # no edge serves it in globex's network
    mesh = api.client.get("/v1/mesh").json()
    assert mesh["flycast"] == []
    shown = api.client.get(IPS.format("rocket")).json()["ips"]
    assert [(i["ip"], i["network"]["org_slug"]) for i in shown] == [(ip, "acme")]
    fresh = assign(api, bearer(two_orgs["bob"])).json()
    assert fresh["network"]["org_slug"] == "globex" and fresh["ip"] != ip
