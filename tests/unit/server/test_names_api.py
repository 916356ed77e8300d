"""Names the API refuses, with a 400 that says why, and nothing created."""

from __future__ import annotations

import pytest

from .conftest import Api


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("web\n", "characters other than"),
        ("Web", "uppercase"),
        ("-web", "starts or ends with '-'"),
        ("a" * 64, "longer than 63"),
    ],
)
def test_a_bad_app_name_is_400_and_no_app_is_made(api: Api, name: str, why: str) -> None:
    response = api.client.post("/v1/apps", json={"app_name": name, "org_slug": "personal"})
    assert response.status_code == 400
    assert why in response.json()["error"]
    listing = api.client.get("/v1/apps", params={"org_slug": "personal"}).json()
    assert listing["total_apps"] == 0


@pytest.mark.parametrize("name", ["m1\n", "-m1", "a" * 64, "a b"])
def test_a_bad_machine_name_is_400_and_no_machine_is_made(api: Api, name: str) -> None:
    api.register_host()
    api.create_app("web")
    response = api.client.post(
        "/v1/apps/web/machines", json={"name": name, "config": {"image": "registry.local/web:1"}}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "invalid machine name" in error or "name: String should have at most 63" in error
    assert api.client.get("/v1/apps/web/machines").json() == []
