"""Tokens, the error body, and the public endpoints."""

from __future__ import annotations

import pytest

from .conftest import Api


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "missing token"),
        (
            {"Authorization": "Bearer wrong"},
            "malformed token: Ferry's tokens read fo1_<id>_<secret>",
        ),
        (
            {"Authorization": "Bearer fo1_0123456789abcdef_" + "x" * 43},
            "invalid token",
        ),
        (
            {"Authorization": "Basic dGVzdA=="},
            "the Authorization header must read 'Bearer <token>' or 'FlyV1 <token>'",
        ),
    ],
    ids=["missing", "malformed", "unknown", "not-bearer"],
)
def test_requests_without_a_valid_token_are_401_saying_why(
    api: Api, headers: dict[str, str], error: str
) -> None:
    api.client.headers.pop("Authorization")
    for method, path in [("GET", "/v1/apps"), ("POST", "/v1/hosts"), ("GET", "/v1/hosts")]:
        response = api.client.request(method, path, headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error"] == error
        assert response.json()["hint"]


def test_the_admin_token_works_with_flyctls_scheme_too(api: Api) -> None:
    token = api.client.headers.pop("Authorization").removeprefix("Bearer ")
    assert (
        api.client.get("/v1/apps", headers={"Authorization": f"FlyV1 {token}"}).status_code == 200
    )


def test_healthz_and_openapi_need_no_token(api: Api) -> None:
    api.client.headers.pop("Authorization")
    assert api.client.get("/healthz").json() == {"ok": True}
    spec = api.client.get("/openapi.json").json()
    assert "/v1/apps/{app_name}/machines" in spec["paths"]
    assert "/v1/hosts/{host_id}/machines" in spec["paths"]


def test_unknown_endpoint_and_method_answer_json(api: Api) -> None:
    missing = api.client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"].startswith("no such endpoint")
    wrong = api.client.put("/v1/apps")
    assert wrong.status_code == 405 and "PUT" in wrong.json()["error"]


def test_out_of_range_query_is_400_naming_it(api: Api) -> None:
    api.register_host()
    response = api.client.get("/v1/hosts/ams-1/machines", params={"timeout": 100})
    assert response.status_code == 400
    assert "query parameter timeout" in response.json()["error"]


def test_platform_regions_and_info(api: Api) -> None:
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.register_host("ams-1", "ams")
    regions = api.client.get("/v1/platform/regions").json()
    assert [r["code"] for r in regions["Regions"]] == ["ams", "iad"]
    assert regions["Nearest"] == "ams" and regions["Regions"][0]["name"].startswith("Amsterdam")
    info = api.client.get("/v1/platform/info").json()
    assert [h["id"] for h in info["hosts"]] == ["ams-1", "iad-1"]
