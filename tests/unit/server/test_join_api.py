"""Joining a server as a host with a join token, through the real API: good once,
until it expires, for its region; every refusal names the problem and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api, bearer, host_body


def make_token(api: Api, **body: Any) -> dict[str, Any]:
    made = api.client.post("/v1/hosts/join-tokens", json=body)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def join(api: Api, token: str, host_id: str = "sin-9", region: str = "sin") -> Any:
    body = {**host_body(host_id, region), "token": token}
    return api.client.post("/v1/hosts/join", json=body, headers={"Authorization": ""})


def host_ids(api: Api) -> list[str]:
    return [h["id"] for h in api.client.get("/v1/hosts").json()]


def test_a_server_joins_once_and_gets_its_own_host_credential(api: Api) -> None:
    token = make_token(api, name="new sin box", region="sin")
    assert token["token"].startswith("fjt1_") and token["region"] == "sin"
    joined = join(api, token["token"])
    assert joined.status_code == 201, joined.text
    assert joined.json()["host"]["id"] == "sin-9" and "sin-9" in host_ids(api)
    credential = bearer(joined.json()["credential"])
    beat = api.client.post("/v1/hosts/sin-9/heartbeat", headers=credential)
    assert beat.status_code == 200
    assert api.client.post("/v1/hosts/ams-1/heartbeat", headers=credential).status_code == 404
    listed = api.client.get("/v1/hosts/join-tokens").json()
    assert listed[0]["used_by"] == "sin-9" and "token" not in listed[0]
    assert token["token"] not in api.client.get("/v1/hosts/join-tokens").text


def test_a_reused_token_is_refused_naming_who_used_it(api: Api) -> None:
    token = make_token(api)["token"]
    assert join(api, token).status_code == 201
    again = join(api, token, host_id="sin-10")
    assert again.status_code == 401 and "already used by host sin-9" in again.text
    assert "sin-10" not in host_ids(api)


def test_an_expired_token_is_refused_and_registers_nothing(api: Api) -> None:
    token = make_token(api, expiry="30m")["token"]
    api.clock.advance(31 * 60)
    expired = join(api, token)
    assert expired.status_code == 401 and "expired" in expired.text
    assert host_ids(api) == []


@pytest.mark.parametrize(
    ("mangle", "named"),
    [
        (lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), "not valid"),
        (lambda t: "fjt1_0000000000000000_" + t[22:], "not valid"),
        (lambda t: "hello", "malformed"),
    ],
)
def test_a_wrong_token_is_401_and_changes_nothing(api: Api, mangle: Any, named: str) -> None:
    token = make_token(api)["token"]
    wrong = join(api, mangle(token))
    assert wrong.status_code == 401 and named in wrong.text
    assert host_ids(api) == []
    assert join(api, token).status_code == 201  # the real one is still good


def test_region_bound_tokens_and_taken_ids_are_refused_before_the_token_is_spent(
    api: Api,
) -> None:
    api.register_host("sin-1", "sin")
    token = make_token(api, region="ams")["token"]
    other_region = join(api, token, host_id="sin-2", region="sin")
    assert other_region.status_code == 403 and "for region ams" in other_region.text
    taken = join(api, token, host_id="sin-1", region="ams")
    assert taken.status_code == 409 and "sin-1" in taken.text
    assert join(api, token, host_id="ams-7", region="ams").status_code == 201


def test_only_the_operator_makes_lists_and_revokes_join_tokens(
    api: Api, two_orgs: dict[str, str]
) -> None:
    alice = bearer(two_orgs["alice"])
    assert api.client.post("/v1/hosts/join-tokens", json={}, headers=alice).status_code == 403
    assert api.client.get("/v1/hosts/join-tokens", headers=alice).status_code == 403
    made = make_token(api)
    bad = api.client.post("/v1/hosts/join-tokens", json={"expiry": "soon"})
    assert bad.status_code == 400 and "expiry" in bad.text
    assert api.client.delete(f"/v1/hosts/join-tokens/{made['id']}").status_code == 204
    assert join(api, made["token"]).status_code == 401
    gone = api.client.delete(f"/v1/hosts/join-tokens/{made['id']}")
    assert gone.status_code == 404
