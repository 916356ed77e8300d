"""Fly's create and update bodies: every top-level key works as on Fly or is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api

IMAGE = "registry.local/web:1"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"lsvd": True}, "'lsvd' (log-structured virtual disks) is not supported"),
        ({"min_secrets_version": 3}, "'min_secrets_version' is not supported yet"),
        ({"skip_dns_and_prayer": True}, "skip_dns_and_prayer"),
    ],
)
def test_a_create_key_ferry_does_not_do_is_400_naming_it(
    api: Api, extra: dict[str, Any], expected: str
) -> None:
    api.register_host()
    api.create_app()

    response = api.client.post("/v1/apps/web/machines", json={"config": {"image": IMAGE}, **extra})

    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
    assert api.client.get("/v1/apps/web/machines").json() == []


def test_skip_service_registration_creates_the_machine_cordoned(api: Api) -> None:
    """On Fly such a machine is not registered with the proxy: it gets no requests."""
    api.register_host()
    api.create_app()

    machine = api.create_machine(skip_service_registration=True)

    assert machine["cordoned"] is True
    routes = api.client.get("/v1/routes").json()
    assert machine["id"] not in str(routes)


def test_empty_flags_are_accepted(api: Api) -> None:
    api.register_host()
    api.create_app()

    machine = api.create_machine(skip_secrets=False, lsvd=False, min_secrets_version=None)

    assert machine["cordoned"] is False


def test_skip_secrets_is_refused_rather_than_ignored(api: Api) -> None:
    api.register_host()
    api.create_app()

    response = api.client.post(
        "/v1/apps/web/machines", json={"config": {"image": IMAGE}, "skip_secrets": True}
    )

    assert response.status_code == 400, response.text
    assert "'skip_secrets' is not supported yet" in response.json()["error"]
    assert api.client.get("/v1/apps/web/machines").json() == []


@pytest.mark.parametrize("flag", ["skip_launch", "skip_service_registration"])
def test_an_update_with_a_flag_it_cannot_honour_is_400_and_changes_nothing(
    api: Api, flag: str
) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()

    response = api.client.post(
        f"/v1/apps/web/machines/{machine['id']}",
        json={"config": {"image": "registry.local/web:2"}, flag: True},
    )

    assert response.status_code == 400, response.text
    assert f"'{flag}' is not supported on update yet" in response.json()["error"]
    current = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    assert current["config"]["image"] == IMAGE
