"""Fly's ``skip_service_registration``: a machine created cordoned, as bluegreen's greens are."""

from __future__ import annotations

from .conftest import Api


def _routed(api: Api) -> list[str]:
    return [m["id"] for m in api.client.get("/v1/routes").json()["machines"]]


def test_a_machine_created_with_skip_service_registration_is_never_routed_until_uncordoned(
    api: Api,
) -> None:
    api.register_host()
    api.create_app()
    plain = api.create_machine()
    green = api.create_machine(skip_service_registration=True)
    assert (plain["cordoned"], green["cordoned"]) == (False, True)
    # Cordoned from the very write that creates it: no routing snapshot ever held it.
    assert _routed(api) == [plain["id"]]
    api.report(green, "started")
    assert _routed(api) == [plain["id"]]  # started is not enough: its checks decide
    assert api.client.post(f"/v1/apps/web/machines/{green['id']}/uncordon").status_code == 200
    assert sorted(_routed(api)) == sorted([plain["id"], green["id"]])


def test_skip_service_registration_must_be_a_boolean(api: Api) -> None:
    api.register_host()
    api.create_app()
    body = {"config": {"image": "registry.local/web:1"}, "skip_service_registration": "maybe"}
    response = api.client.post("/v1/apps/web/machines", json=body)
    assert response.status_code == 400
    assert "skip_service_registration" in response.json()["error"]
    assert api.client.get("/v1/apps/web/machines").json() == []
