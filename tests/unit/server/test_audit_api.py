"""The audit trail through the real API: who changed what, and who tried."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import AUTH, Api, bearer, host_body, org_with_admin

_STOP = "/v1/apps/{app_name}/machines/{machine_id}/stop"


def _audit(api: Api, org: str, token: str | None = None, **query: Any) -> list[dict[str, Any]]:
    headers = AUTH if token is None else bearer(token)
    answer = api.client.get(f"/v1/orgs/{org}/audit", params=query, headers=headers)
    assert answer.status_code == 200, answer.text
    records: list[dict[str, Any]] = answer.json()
    return records


@pytest.fixture
def acme(api: Api) -> dict[str, str]:
    """acme (alice, app ``rocket`` with one machine), globex (bob with an org token
    named ``bob-ci``, app ``widget``)."""
    alice = org_with_admin(api, "acme", "alice@acme.test")
    bob = org_with_admin(api, "globex", "bob@globex.test")
    for token, app in ((alice, "rocket"), (bob, "widget")):
        made = api.client.post("/v1/apps", json={"app_name": app}, headers=bearer(token))
        assert made.status_code == 201, made.text
    api.client.post("/v1/hosts", json=host_body())
    machine = api.client.post(
        "/v1/apps/rocket/machines",
        json={"config": {"image": "registry.local/rocket:1", "env": {"SEED": "s3cr3t-value"}}},
        headers=bearer(alice),
    )
    assert machine.status_code == 200, machine.text
    bob_ci = api.client.post(
        "/v1/tokens",
        json={"kind": "org", "org_slug": "globex", "name": "bob-ci"},
        headers=bearer(bob),
    )
    assert bob_ci.status_code == 201, bob_ci.text
    return {
        "alice": alice,
        "bob": bob_ci.json()["token"],
        "bob_token_id": bob_ci.json()["id"],
        "machine": machine.json()["id"],
    }


def test_another_organizations_attempts_are_404_and_in_the_victims_trail(
    api: Api, acme: dict[str, str]
) -> None:
    bob, machine = bearer(acme["bob"]), acme["machine"]
    before = _audit(api, "acme")[0]["id"]
    stop = api.client.post(f"/v1/apps/rocket/machines/{machine}/stop", headers=bob, json={})
    delete = api.client.delete("/v1/apps/rocket", headers=bob)
    peek = api.client.get(f"/v1/apps/rocket/machines/{machine}/events", headers=bob)
    assert (stop.status_code, delete.status_code, peek.status_code) == (404, 404, 404)

    attempts = [r for r in _audit(api, "acme") if r["id"] > before]
    assert [(r["method"], r["route"], r["status"]) for r in attempts] == [
        ("GET", "/v1/apps/{app_name}/machines/{machine_id}/events", 404),
        ("DELETE", "/v1/apps/{app_name}", 404),
        ("POST", _STOP, 404),
    ]
    for record in attempts:
        assert record["actor"] == "org token 'bob-ci' (globex)"
        assert record["token_id"] == acme["bob_token_id"]
        assert record["org_slug"] == "acme"
        assert record["outcome"] == "app 'rocket' not found"
        assert record["source"] == "testclient"
    assert attempts[2]["target"] == {"app_name": "rocket", "machine_id": machine}
    listed = api.client.get("/v1/apps", params={"org_slug": "acme"}, headers=bob)
    assert listed.status_code == 404
    probe = _audit(api, "acme", limit=1)[0]
    assert (probe["route"], probe["actor"], probe["status"]) == (
        "/v1/apps",
        "org token 'bob-ci' (globex)",
        404,
    )
    # Nothing happened to the app, and globex's own trail does not hold acme's records.
    assert api.client.get("/v1/apps/rocket").json()["status"] != "destroying"
    assert all(r["org_slug"] == "globex" for r in _audit(api, "globex"))


def test_a_change_records_actor_route_target_and_outcome_and_never_the_body(
    api: Api, acme: dict[str, str]
) -> None:
    alice, machine = bearer(acme["alice"]), acme["machine"]
    stopped = api.client.post(f"/v1/apps/rocket/machines/{machine}/stop", headers=alice, json={})
    assert stopped.status_code == 200, stopped.text
    missing = api.client.post("/v1/apps/rocket/machines/nope/stop", headers=alice, json={})
    assert missing.status_code == 404

    latest, done = _audit(api, "acme", limit=2)
    assert done["route"] == _STOP and done["method"] == "POST"
    assert done["target"] == {"app_name": "rocket", "machine_id": machine}
    assert (done["status"], done["outcome"]) == (200, "ok")
    assert done["actor"].startswith("user token ") and "(alice@acme.test)" in done["actor"]
    assert done["at"].startswith("2026-01-01")
    assert latest["status"] == 404 and "nope" in latest["outcome"]

    everything = api.client.get("/v1/audit").text  # the operator's view of every record
    assert "s3cr3t-value" not in everything  # the machine's env was in a body, never recorded
    assert acme["alice"] not in everything and acme["bob"] not in everything
    created = [r for r in _audit(api, "acme") if r["route"] == "/v1/apps/{app_name}/machines"]
    assert created and created[0]["target"] == {"app_name": "rocket"}


def test_reads_are_not_recorded(api: Api, acme: dict[str, str]) -> None:
    alice = bearer(acme["alice"])
    before = _audit(api, "acme")
    for path in ("/v1/apps/rocket", "/v1/apps/rocket/machines", "/v1/apps/no-such-app"):
        api.client.get(path, headers=alice)
    api.client.get("/v1/apps", headers=alice)
    assert _audit(api, "acme") == before


def test_the_trail_is_for_the_orgs_admins_and_the_operator_only(
    api: Api, acme: dict[str, str]
) -> None:
    refused = api.client.get("/v1/orgs/acme/audit", headers=bearer(acme["bob"]))
    unknown = api.client.get("/v1/orgs/initech/audit", headers=bearer(acme["bob"]))
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["error"] == unknown.json()["error"].replace("initech", "acme")
    assert api.client.get("/v1/audit", headers=bearer(acme["bob"])).status_code == 403
    assert _audit(api, "acme", acme["alice"])  # alice is acme's admin
    # bob's look at acme's trail is itself another organization's probe, in acme's trail.
    assert _audit(api, "acme")[0]["route"] == "/v1/orgs/{slug}/audit"


def test_creations_land_in_the_organization_they_touched(api: Api, acme: dict[str, str]) -> None:
    routes = {(r["method"], r["route"]): r for r in _audit(api, "acme")}
    app = routes[("POST", "/v1/apps")]
    assert app["target"] == {"app_name": "rocket"} and app["status"] == 201
    joined = routes[("POST", "/v1/invitations/accept")]
    assert joined["actor"].endswith("(alice@acme.test)") and joined["status"] == 201
    assert routes[("POST", "/v1/orgs")]["actor"] == "the operator"
    token = next(r for r in _audit(api, "globex") if r["route"] == "/v1/tokens")
    assert token["target"]["name"] == "bob-ci" and token["target"]["kind"] == "org"
    assert token["target"]["token_id"] == acme["bob_token_id"]


def test_unauthenticated_attempts_are_recorded_and_agent_reports_are_not(
    api: Api, acme: dict[str, str]
) -> None:
    before = _audit(api, "acme")[0]["id"]
    no_token = api.client.delete("/v1/apps/rocket", headers={"Authorization": ""})
    forged = api.client.delete("/v1/apps/rocket", headers=bearer("fo1_abc_forged"))
    assert no_token.status_code == forged.status_code == 401
    report = api.client.post("/v1/hosts/ams-1/heartbeat", json={})
    assert report.status_code < 500
    new = [r for r in _audit(api, "acme") if r["id"] > before]
    assert [(r["actor"], r["status"]) for r in new] == [("unauthenticated", 401)] * 2
    assert new[0]["outcome"].startswith("malformed token") and new[1]["outcome"] == "missing token"
    assert not any(r["route"].startswith("/v1/hosts") for r in api.client.get("/v1/audit").json())


def test_pages_and_bad_queries(api: Api, acme: dict[str, str]) -> None:
    everything = _audit(api, "acme")
    first = _audit(api, "acme", limit=2)
    following = _audit(api, "acme", limit=2, before=first[-1]["id"])
    assert first + following == everything[:4]
    for query in ({"limit": 0}, {"limit": "many"}, {"before": -1}, {"since": 3}):
        refused = api.client.get("/v1/orgs/acme/audit", params=query)
        assert refused.status_code == 400, (query, refused.text)
    assert api.client.get("/v1/orgs/initech/audit").status_code == 404


def test_nested_routes_are_recorded_and_authorized_with_their_full_template(
    api: Api, acme: dict[str, str]
) -> None:
    """The lease routes live in a router included under ``/v1/apps/{app_name}/machines``."""
    deploy = api.client.post(
        "/v1/tokens",
        json={"kind": "deploy", "app_name": "rocket", "name": "ci"},
        headers=bearer(acme["alice"]),
    )
    assert deploy.status_code == 201, deploy.text
    lease_path = f"/v1/apps/rocket/machines/{acme['machine']}/lease"
    taken = api.client.post(lease_path, json={}, headers=bearer(deploy.json()["token"]))
    assert taken.status_code == 200, taken.text
    stolen = api.client.post(lease_path, json={}, headers=bearer(acme["bob"]))
    assert stolen.status_code == 404

    probe, took = _audit(api, "acme", limit=2)
    template = "/v1/apps/{app_name}/machines/{machine_id}/lease"
    assert (took["route"], took["status"], took["actor"]) == (
        template,
        200,
        "deploy token 'ci' (acme)",
    )
    assert (probe["route"], probe["status"]) == (template, 404)
    assert probe["actor"] == "org token 'bob-ci' (globex)"
