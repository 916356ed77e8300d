"""Apps through the API: create, list, show, delete; errors a user can act on."""

from __future__ import annotations

import pytest

from .conftest import Api


def test_create_list_and_show_an_app(api: Api) -> None:
    created = api.client.post("/v1/apps", json={"app_name": "web", "org_slug": "personal"})
    assert created.status_code == 201
    assert created.json()["organization"] == {
        "name": "Personal",
        "slug": "personal",
        "sixpn_network": 1,
    }
    listing = api.client.get("/v1/apps", params={"org_slug": "personal"}).json()
    assert listing["total_apps"] == 1 and listing["apps"][0]["name"] == "web"
    assert api.client.get("/v1/apps/web").json()["machine_count"] == 0


def test_duplicate_app_is_409(api: Api) -> None:
    api.create_app("web")
    again = api.client.post("/v1/apps", json={"app_name": "web"})
    assert again.status_code == 409
    assert again.json()["error"] == "app name 'web' is already taken"


@pytest.mark.parametrize("name", ["Web", "-web", "w", "web_1", "a" * 64])
def test_bad_app_name_is_400_with_a_hint(api: Api, name: str) -> None:
    response = api.client.post("/v1/apps", json={"app_name": name})
    assert response.status_code == 400
    assert name in response.json()["error"]
    assert "lowercase" in response.json()["hint"]


def test_unknown_app_and_org_are_404(api: Api) -> None:
    missing = api.client.get("/v1/apps/ghost")
    assert missing.status_code == 404 and "'ghost'" in missing.json()["error"]
    org = api.client.post("/v1/apps", json={"app_name": "web", "org_slug": "acme"})
    assert org.status_code == 404 and "'acme'" in org.json()["error"]


def test_delete_empty_app_is_immediate(api: Api) -> None:
    api.create_app("web")
    assert api.client.delete("/v1/apps/web").status_code == 202
    assert api.client.get("/v1/apps/web").status_code == 404


def test_delete_app_with_running_machine_needs_force_then_waits_for_agent(api: Api) -> None:
    api.register_host()
    api.create_app("web")
    machine = api.create_machine()
    api.report(machine, "started")
    refused = api.client.delete("/v1/apps/web")
    assert refused.status_code == 409 and "force" in refused.json()["hint"]

    assert api.client.delete("/v1/apps/web", params={"force": "true"}).status_code == 202
    assert api.client.get("/v1/apps/web").json()["status"] == "destroying"
    snapshot = api.client.get("/v1/hosts/ams-1/machines").json()
    assert snapshot["machines"][0]["desired_state"] == "destroyed"

    api.report(machine, "destroyed", "destroy")
    assert api.client.get("/v1/apps/web").status_code == 404
    assert api.client.get("/v1/hosts/ams-1/machines").json()["machines"] == []


def test_a_custom_network_is_refused_by_name_and_creates_nothing(api: Api) -> None:
    refused = api.client.post("/v1/apps", json={"app_name": "web", "network": "backend"})
    assert refused.status_code == 400 and "network 'backend'" in refused.json()["error"]
    assert api.client.get("/v1/apps/web").status_code == 404
    fine = api.client.post("/v1/apps", json={"app_name": "web", "network": "default"})
    assert fine.status_code == 201
