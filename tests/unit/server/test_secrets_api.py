"""App secrets through the real API: values go in and never come back out."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from .conftest import AUTH, Api, bearer, mint_token

VALUE = "hunter2-very-secret-value"


def _set(api: Api, app: str, values: dict[str, Any], **flags: Any) -> Any:
    return api.client.post(f"/v1/apps/{app}/secrets", json={"values": values, **flags})


def test_list_shows_names_digests_and_dates_never_values(api: Api) -> None:
    api.create_app("web")
    answer = _set(api, "web", {"API_KEY": VALUE, "OTHER": "x"})
    assert answer.status_code == 200, answer.text
    assert VALUE not in answer.text
    listed = api.client.get("/v1/apps/web/secrets")
    assert listed.status_code == 200 and VALUE not in listed.text
    body = listed.json()
    assert [s["name"] for s in body["secrets"]] == ["API_KEY", "OTHER"]
    first = body["secrets"][0]
    assert set(first) == {"name", "digest", "created_at", "updated_at", "staged"}
    assert len(first["digest"]) == 16 and first["staged"] is False
    assert body["version"] == body["deployed"] == 1
    assert body["rollout"]["state"] == "complete" and body["rollout"]["total"] == 0


def test_a_new_value_changes_the_digest_the_same_value_keeps_it(api: Api) -> None:
    api.create_app("web")
    digest = _set(api, "web", {"A": "1"}).json()["secrets"][0]["digest"]
    assert _set(api, "web", {"A": "1"}).json()["secrets"][0]["digest"] == digest
    assert _set(api, "web", {"A": "2"}).json()["secrets"][0]["digest"] != digest


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"GOOD": "1", "BAD-NAME": VALUE}, "'BAD-NAME'"),
        ({"GOOD": "1", "9LIVES": VALUE}, "'9LIVES'"),
        ({"GOOD": "1", "FLY_REGION": VALUE}, "reserved"),
        ({"GOOD": "1", "HUGE": VALUE * 3000}, "secret HUGE is"),
        ({"GOOD": "1", "NUL": VALUE + "\u0000"}, "secret NUL contains"),
    ],
)
def test_bad_names_and_values_are_400_naming_the_secret_and_nothing_is_stored(
    api: Api, values: dict[str, str], named: str
) -> None:
    api.create_app("web")
    answer = _set(api, "web", values)
    assert answer.status_code == 400, answer.text
    assert named in answer.json()["error"]
    assert VALUE not in answer.text
    listed = api.client.get("/v1/apps/web/secrets").json()
    assert listed["secrets"] == [] and listed["version"] == 0


def test_malformed_bodies_are_400_without_echoing_values(api: Api) -> None:
    api.create_app("web")
    for body in ({"values": {"A": 5}}, {"values": {}}, {"values": {"A": VALUE}, "extra": VALUE}):
        answer = api.client.post("/v1/apps/web/secrets", json=body)
        assert answer.status_code == 400, answer.text
        assert VALUE not in answer.text


def test_unset_removes_and_an_unknown_name_changes_nothing(api: Api) -> None:
    api.create_app("web")
    _set(api, "web", {"A": "1", "B": "2"})
    missing = _set(api, "web", {"A": None, "NOPE": None})
    assert missing.status_code == 404 and "NOPE" in missing.json()["error"]
    assert [s["name"] for s in api.client.get("/v1/apps/web/secrets").json()["secrets"]] == [
        "A",
        "B",
    ]
    gone = api.client.delete("/v1/apps/web/secrets/A")
    assert gone.status_code == 200, gone.text
    assert [s["name"] for s in gone.json()["secrets"]] == ["B"]


def test_stage_stores_only_and_deploy_rolls_it_out(api: Api) -> None:
    api.create_app("web")
    staged = _set(api, "web", {"A": "1"}, stage=True).json()
    assert staged["secrets"][0]["staged"] is True
    assert staged["version"] == 1 and staged["deployed"] == 0 and staged["rollout"] is None
    deployed = api.client.post("/v1/apps/web/secrets/deploy", json={})
    assert deployed.status_code == 200, deployed.text
    assert deployed.json()["secrets"][0]["staged"] is False
    again = api.client.post("/v1/apps/web/secrets/deploy", json={})
    assert again.status_code == 409 and "no staged secrets" in again.json()["error"]


def test_another_organizations_secrets_are_404_and_a_readonly_token_only_lists(
    api: Api,
    two_orgs: dict[str, str],
) -> None:
    bob = bearer(two_orgs["bob"])
    alice = bearer(two_orgs["alice"])
    assert (
        api.client.post(
            "/v1/apps/rocket/secrets", json={"values": {"A": VALUE}}, headers=alice
        ).status_code
        == 200
    )
    missing = api.client.get("/v1/apps/no-such-app/secrets", headers=bob)
    for method, path, body in [
        ("GET", "/v1/apps/rocket/secrets", None),
        ("POST", "/v1/apps/rocket/secrets", {"values": {"A": "stolen"}}),
        ("DELETE", "/v1/apps/rocket/secrets/A", None),
        ("POST", "/v1/apps/rocket/secrets/deploy", {}),
    ]:
        answer = api.client.request(method, path, headers=bob, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"] == missing.json()["error"].replace("no-such-app", "rocket")
    readonly = bearer(mint_token(api, two_orgs["alice"], kind="readonly", org_slug="acme"))
    assert api.client.get("/v1/apps/rocket/secrets", headers=readonly).status_code == 200
    refused = api.client.post(
        "/v1/apps/rocket/secrets", json={"values": {"A": "x"}}, headers=readonly
    )
    assert refused.status_code == 403
    deploy = bearer(mint_token(api, two_orgs["alice"], kind="deploy", app_name="rocket"))
    assert (
        api.client.post(
            "/v1/apps/rocket/secrets", json={"values": {"B": "2"}}, headers=deploy
        ).status_code
        == 200
    )
    assert api.client.get("/v1/apps/widget/secrets", headers=deploy).status_code == 404


def _machine_on_host(api: Api, app: str, host: str, region: str) -> dict[str, Any]:
    api.register_host(host, region, subnet=f"10.{len(host)}.{ord(host[-1])}.0/24")
    machine = api.create_machine(app, region=region)
    assert machine["host_id"] == host
    return machine


def test_only_the_machines_host_gets_its_values(api: Api) -> None:
    api.create_app("web")
    _set(api, "web", {"API_KEY": VALUE}, stage=True)
    machine = _machine_on_host(api, "web", "ams-1", "ams")
    url = f"/v1/hosts/ams-1/machines/{machine['id']}/secrets"
    assert api.client.get(url).json() == {"app_name": "web", "env": {"API_KEY": VALUE}}
    ams = bearer(mint_token(api, "test-admin-token", kind="host", host_id="ams-1"))
    iad = bearer(mint_token(api, "test-admin-token", kind="host", host_id="iad-1"))
    assert api.client.get(url, headers=ams).json()["env"] == {"API_KEY": VALUE}
    # Another host's credential: neither its own path for this machine, nor this host's path.
    assert api.client.get(url, headers=iad).status_code == 404
    other = api.client.get(f"/v1/hosts/iad-1/machines/{machine['id']}/secrets", headers=iad)
    assert other.status_code == 404 and VALUE not in other.text
    # Nowhere else: the machine, its events, the host's watch.
    for path in (
        f"/v1/apps/web/machines/{machine['id']}",
        f"/v1/apps/web/machines/{machine['id']}/events",
        "/v1/hosts/ams-1/machines?timeout=0",
        "/v1/apps/web/secrets",
    ):
        assert VALUE not in api.client.get(path).text, path


def test_a_change_rolls_each_running_machine_and_answers_when_all_run(api: Api) -> None:
    api.create_app("web")
    machine = _machine_on_host(api, "web", "ams-1", "ams")
    api.report(machine, "started")
    answers: list[Any] = []
    setting = threading.Thread(target=lambda: answers.append(_set(api, "web", {"A": "1"})))
    setting.start()
    # The server replaced the machine (a new instance); the "agent" starts it.
    replaced = _wait_for(api, machine, lambda m: m["instance_id"] != machine["instance_id"])
    assert replaced["state"] == "replacing"
    assert setting.is_alive()  # still waiting for the machine
    api.report(replaced, "started")
    setting.join(timeout=10)
    assert not setting.is_alive()
    body = answers[0].json()
    assert body["rollout"]["state"] == "complete"
    assert body["rollout"]["machines"] == [machine["id"]]
    assert body["deployed"] == body["version"] == 1


def test_a_detached_change_answers_at_once_while_the_roll_goes_on(api: Api) -> None:
    api.create_app("web")
    machine = _machine_on_host(api, "web", "ams-1", "ams")
    api.report(machine, "started")
    detached = _set(api, "web", {"A": "1"}, detach=True).json()
    assert detached["rollout"]["state"] == "running" and detached["deployed"] == 0
    assert detached["rollout"]["machines"] == [machine["id"]]
    replaced = _wait_for(api, machine, lambda m: m["instance_id"] != machine["instance_id"])
    api.report(replaced, "started")
    api.client.portal.call(api.plane.secrets_rollouts.settle)  # type: ignore[union-attr]
    body = api.client.get("/v1/apps/web/secrets").json()
    assert body["rollout"]["state"] == "complete" and body["deployed"] == 1


def test_a_machine_that_fails_stops_the_roll_and_leaves_the_secrets_staged(api: Api) -> None:
    api.create_app("web")
    machine = _machine_on_host(api, "web", "ams-1", "ams")
    api.report(machine, "started")
    answers: list[Any] = []
    setting = threading.Thread(target=lambda: answers.append(_set(api, "web", {"A": "1"})))
    setting.start()
    replaced = _wait_for(api, machine, lambda m: m["instance_id"] != machine["instance_id"])
    api.report(replaced, "failed")
    setting.join(timeout=10)
    body = answers[0].json()
    assert body["rollout"]["state"] == "failed" and body["rollout"]["done"] == 0
    assert "failed" in body["rollout"]["reason"]
    assert body["secrets"][0]["staged"] is True
    # deploy rolls again: this time the machine starts.
    redeploying = threading.Thread(
        target=lambda: answers.append(api.client.post("/v1/apps/web/secrets/deploy", json={}))
    )
    redeploying.start()
    again = _wait_for(api, replaced, lambda m: m["instance_id"] != replaced["instance_id"])
    api.report(again, "started")
    redeploying.join(timeout=10)
    assert answers[1].json()["rollout"]["state"] == "complete"
    assert answers[1].json()["secrets"][0]["staged"] is False


def _wait_for(api: Api, machine: dict[str, Any], done: Any) -> dict[str, Any]:
    """The machine once ``done(it)``, long-polling the host's watch (never sleeping)."""
    since = 0
    for _ in range(50):
        answer = api.client.get(f"/v1/hosts/{machine['host_id']}/machines?since={since}&timeout=5")
        since = answer.json()["resource_version"]
        found = next(m for m in answer.json()["machines"] if m["id"] == machine["id"])
        if done(found):
            return dict(found)
    raise AssertionError("the machine never changed")


def test_values_are_not_in_the_store_file(api: Api) -> None:
    api.create_app("web")
    _set(api, "web", {"API_KEY": VALUE})
    store = api.plane.store
    path = store.path
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert VALUE.encode() not in raw
    assert json.dumps(VALUE).encode() not in raw
    assert AUTH  # the admin token is what the client sends throughout
