"""WAF events through the real API: edges report them, app readers list them."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.store import sqlite_waf

from .conftest import Api, bearer, mint_token


def event(app: str, rid: str, at: str = "2026-01-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {
        "app": app, "request_id": rid, "time": at, "client_ip": "192.0.2.7", "method": "GET",
        "path": "/?q=%3Cscript%3E", "action": "blocked", "status": 403, "anomaly_score": 10,
        "rule_ids": [941100, 941110, 949110], **extra,
    }  # fmt: skip


@pytest.fixture
def edge(api: Api) -> dict[str, str]:
    return bearer(mint_token(api, "test-admin-token", kind="edge", region="ams", name="edge-ams"))


def report(api: Api, edge: dict[str, str], *events: dict[str, Any], region: str = "ams") -> Any:
    return api.client.post(
        f"/v1/edges/{region}/waf-events", json={"events": list(events)}, headers=edge
    )


def test_an_edge_reports_and_the_apps_readers_list_oldest_first(
    api: Api, two_orgs: dict[str, str], edge: dict[str, str]
) -> None:
    sent = report(
        api,
        edge,
        event("rocket", "r2", "2026-01-01T00:00:02Z"),
        event("rocket", "r1", "2026-01-01T00:00:01Z", region="elsewhere"),
        event("gone", "r3"),
    )
    assert sent.status_code == 200 and sent.json() == {"stored": 2, "skipped": 1}
    listed = api.client.get("/v1/apps/rocket/waf/events", headers=bearer(two_orgs["alice"]))
    assert listed.status_code == 200
    body = listed.json()
    assert [e["request_id"] for e in body] == ["r1", "r2"]
    assert body[0]["rule_ids"] == [941100, 941110, 949110] and body[0]["region"] == "ams"
    since = api.client.get(
        "/v1/apps/rocket/waf/events?since=2026-01-01T00:00:02Z&limit=5",
        headers=bearer(two_orgs["alice"]),
    )
    assert [e["request_id"] for e in since.json()] == ["r2"]


def test_another_organizations_app_is_404_and_other_regions_are_403(
    api: Api, two_orgs: dict[str, str], edge: dict[str, str]
) -> None:
    assert report(api, edge, event("rocket", "r1")).status_code == 200
    bob = api.client.get("/v1/apps/rocket/waf/events", headers=bearer(two_orgs["bob"]))
    assert bob.status_code == 404 and "r1" not in bob.text
    assert report(api, edge, event("rocket", "r9"), region="iad").status_code == 403
    user = report(api, bearer(two_orgs["alice"]), event("rocket", "r9"))
    assert user.status_code == 403


@pytest.mark.parametrize(
    ("query", "named"),
    [("since=yesterday", "is not a time"), ("since=2026-01-01T00:00:00", "no time zone"),
     ("limit=0", "limit"), ("until=1", "until")],
)  # fmt: skip
def test_bad_queries_are_400_naming_the_parameter(
    api: Api, two_orgs: dict[str, str], query: str, named: str
) -> None:
    answer = api.client.get(
        f"/v1/apps/rocket/waf/events?{query}", headers=bearer(two_orgs["alice"])
    )
    assert answer.status_code in (400, 422) and named in answer.text


def test_bad_reports_are_refused_whole(
    api: Api, two_orgs: dict[str, str], edge: dict[str, str]
) -> None:
    bad = report(api, edge, event("rocket", "ok"), event("rocket", "bad", rule_ids=["x"]))
    assert bad.status_code in (400, 422)
    listed = api.client.get("/v1/apps/rocket/waf/events", headers=bearer(two_orgs["alice"]))
    assert listed.json() == []


def test_events_are_kept_per_app_up_to_the_bound_and_go_with_the_app(
    api: Api, two_orgs: dict[str, str], edge: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_waf, "WAF_EVENTS_PER_APP", 3)
    alice = bearer(two_orgs["alice"])
    for n in range(5):
        assert report(api, edge, event("rocket", f"r{n}")).status_code == 200
    listed = api.client.get("/v1/apps/rocket/waf/events", headers=alice).json()
    assert [e["request_id"] for e in listed] == ["r2", "r3", "r4"]
    assert api.client.delete("/v1/apps/rocket", headers=alice).status_code == 202
    again = api.client.post("/v1/apps", json={"app_name": "rocket"}, headers=alice)
    assert again.status_code == 201
    assert api.client.get("/v1/apps/rocket/waf/events", headers=alice).json() == []


def test_machines_carry_config_waf_and_bad_settings_are_400_naming_the_field(api: Api) -> None:
    api.register_host()
    api.create_app("web")
    waf = {"mode": "block", "paranoia": 4, "exclude_rules": [942100]}
    made = api.create_machine("web", config={"image": "registry.local/web:1", "waf": waf})
    assert made["config"]["waf"]["paranoia"] == 4
    assert made["config"]["waf"]["exclude_rules"] == [942100]
    refused = [
        ({"mode": "deny"}, "mode"),
        ({"paranoia": 5}, "paranoia"),
        ({"body_limit": 1 << 30}, "body_limit"),
        ({"rules": []}, "rules"),
        ({"outbound_threshold": 4}, "outbound_threshold"),
    ]
    for bad, named in refused:
        answer = api.client.post(
            "/v1/apps/web/machines", json={"config": {"image": "registry.local/web:1", "waf": bad}}
        )
        assert answer.status_code == 400, answer.text
        assert named in answer.json()["error"]
