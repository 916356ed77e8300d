"""The .internal records a host's resolver gets: its organizations only, every region,
and a new machine wakes the long poll."""

from __future__ import annotations

from typing import Any

from ferry.net.internal_records import InternalRecords

from .conftest import Api, bearer, mint_token


def host_token(api: Api, host_id: str, region: str) -> dict[str, str]:
    token = mint_token(
        api, "test-admin-token", kind="host", host_id=host_id, region=region, name=host_id
    )
    return bearer(token)


def feed(api: Api, host: str, who: dict[str, str], query: str = "") -> Any:
    return api.client.get(f"/v1/hosts/{host}/internal{query}", headers=who)


def test_a_host_gets_the_records_of_the_organizations_it_serves_only(
    api: Api, two_orgs: dict[str, str]
) -> None:
    api.register_host("ams-1", "ams")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    ams = host_token(api, "ams-1", "ams")
    alice, bob = bearer(two_orgs["alice"]), bearer(two_orgs["bob"])
    body = {"config": {"image": "registry.local/web:1"}}
    rocket_ams = api.client.post(
        "/v1/apps/rocket/machines", json={**body, "region": "ams"}, headers=alice
    ).json()
    rocket_sin = api.client.post(
        "/v1/apps/rocket/machines", json={**body, "region": "sin"}, headers=alice
    ).json()
    api.client.post("/v1/apps/widget/machines", json={**body, "region": "sin"}, headers=bob)

    answer = feed(api, "ams-1", ams)
    assert answer.status_code == 200, answer.text
    records = InternalRecords.from_json(answer.text)
    assert {m.id for m in records.machines} == {rocket_ams["id"], rocket_sin["id"]}
    assert "widget" not in answer.text  # globex has nothing on ams-1
    assert {str(m.address) for m in records.machines} == {
        rocket_ams["private_ip"],
        rocket_sin["private_ip"],
    }

    version = answer.headers["Ferry-Version"]
    unchanged = feed(api, "ams-1", ams, f"?since={version}&timeout=0")
    assert unchanged.headers["Ferry-Version"] == version
    api.client.post("/v1/apps/rocket/machines", json={**body, "region": "ams"}, headers=alice)
    woken = feed(api, "ams-1", ams, f"?since={version}&timeout=5")
    assert len(InternalRecords.from_json(woken.text).machines) == 3


def test_only_that_hosts_credential_reads_its_feed(api: Api, two_orgs: dict[str, str]) -> None:
    api.register_host("ams-1", "ams")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    assert feed(api, "ams-1", host_token(api, "sin-1", "sin")).status_code == 404
    assert feed(api, "ams-1", bearer(two_orgs["alice"])).status_code in (403, 404)
