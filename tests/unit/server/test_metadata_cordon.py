"""Metadata and cordon through the API: Fly's shapes, limits, and no restart."""

from __future__ import annotations

from typing import Any

import pytest

from ferry.model.metadata import MAX_METADATA_KEYS, MAX_METADATA_VALUE_BYTES

from .conftest import Api


@pytest.fixture
def machine(api: Api) -> dict[str, Any]:
    api.register_host()
    api.create_app()
    return api.report(api.create_machine(), "started")


def _url(machine: dict[str, Any], tail: str = "") -> str:
    return f"/v1/apps/web/machines/{machine['id']}{tail}"


def test_metadata_set_get_delete_in_flys_shapes(api: Api, machine: dict[str, Any]) -> None:
    assert api.client.get(_url(machine, "/metadata")).json() == {}
    response = api.client.post(_url(machine, "/metadata/role"), json={"value": "primary"})
    assert response.status_code == 204 and response.content == b""
    assert api.client.get(_url(machine, "/metadata")).json() == {"role": "primary"}
    assert api.client.get(_url(machine)).json()["config"]["metadata"] == {"role": "primary"}
    assert api.client.delete(_url(machine, "/metadata/role")).status_code == 204
    assert api.client.get(_url(machine, "/metadata")).json() == {}
    missing = api.client.delete(_url(machine, "/metadata/role"))
    assert missing.status_code == 404 and "no metadata key 'role'" in missing.json()["error"]


def test_a_metadata_change_does_not_restart_the_machine(api: Api, machine: dict[str, Any]) -> None:
    api.client.post(_url(machine, "/metadata/role"), json={"value": "primary"})
    after = api.client.get(_url(machine)).json()
    assert after["instance_id"] == machine["instance_id"]  # the agent replaces only on a new id
    assert (after["state"], after["generation"]) == ("started", machine["generation"])
    versions = api.client.get(_url(machine, "/versions")).json()
    assert len(versions) == 1 and versions[0]["user_config"]["metadata"] == {"role": "primary"}


def test_metadata_over_the_limits_is_400_and_changes_nothing(
    api: Api, machine: dict[str, Any]
) -> None:
    big = "x" * (MAX_METADATA_VALUE_BYTES + 1)
    cases = [
        ("/metadata/role", {"value": big}, "bytes; the limit"),
        ("/metadata/" + "k" * 65, {"value": "v"}, "characters long"),
        ("/metadata/bad key!", {"value": "v"}, "not allowed"),
        ("/metadata/role", {"value": 3}, "value"),
        ("/metadata/role", {}, "value"),
        ("/metadata/role", {"value": "v", "ttl": 3}, "ttl"),
    ]
    for tail, body, said in cases:
        response = api.client.post(_url(machine, tail), json=body)
        assert response.status_code == 400, (tail, response.text)
        assert said in response.json()["error"]
    for i in range(MAX_METADATA_KEYS):
        api.client.post(_url(machine, f"/metadata/k{i}"), json={"value": "v"})
    over = api.client.post(_url(machine, "/metadata/one-more"), json={"value": "v"})
    assert over.status_code == 400 and "the limit" in over.json()["error"]
    assert len(api.client.get(_url(machine, "/metadata")).json()) == MAX_METADATA_KEYS


def test_metadata_limits_apply_to_create_too(api: Api, machine: dict[str, Any]) -> None:
    config = {"image": "x", "metadata": {"k": "x" * (MAX_METADATA_VALUE_BYTES + 1)}}
    response = api.client.post("/v1/apps/web/machines", json={"config": config})
    assert response.status_code == 400
    assert "config.metadata" in response.json()["error"]


def test_list_filters_on_metadata(api: Api, machine: dict[str, Any]) -> None:
    other = api.create_machine(config={"image": "x", "metadata": {"role": "replica"}})
    api.client.post(_url(machine, "/metadata/role"), json={"value": "primary"})
    api.client.post(_url(machine, "/metadata/tier"), json={"value": "1"})

    def ids(query: str) -> list[str]:
        return [m["id"] for m in api.client.get(f"/v1/apps/web/machines?{query}").json()]

    assert ids("metadata.role=primary") == [machine["id"]]
    assert ids("metadata.role=replica") == [other["id"]]
    assert ids("metadata.role=primary&metadata.tier=1") == [machine["id"]]
    assert ids("metadata.role=primary&metadata.tier=2") == []
    assert ids("metadata.nothing=x") == []


def test_list_state_and_summary(api: Api, machine: dict[str, Any]) -> None:
    stopped = api.create_machine(skip_launch=True)
    started = api.client.get("/v1/apps/web/machines?state=started").json()
    assert [m["id"] for m in started] == [machine["id"]]
    both = api.client.get("/v1/apps/web/machines?state=started,created").json()
    assert {m["id"] for m in both} == {machine["id"], stopped["id"]}
    summary = api.client.get("/v1/apps/web/machines?summary=true").json()
    assert len(summary) == 2
    assert all("config" not in m and "events" not in m for m in summary)
    states = {m["id"]: m["state"] for m in summary}
    assert states == {machine["id"]: "started", stopped["id"]: "created"}


def test_cordon_shows_on_the_machine_and_leaves_the_edges_table(
    api: Api, machine: dict[str, Any]
) -> None:
    assert api.client.get(_url(machine)).json()["cordoned"] is False
    assert api.client.post(_url(machine, "/cordon")).json() == {"ok": True}
    assert api.client.get(_url(machine)).json()["cordoned"] is True
    routes = api.client.get("/v1/routes").json()
    assert machine["id"] not in [m["id"] for m in routes["machines"]]
    # The edges' long poll sees the change: the version moved.
    assert api.client.post(_url(machine, "/uncordon")).status_code == 200
    after = api.client.get(f"/v1/routes?since={routes['resource_version']}&timeout=0").json()
    assert machine["id"] in [m["id"] for m in after["machines"]]
    assert api.client.get(_url(machine)).json()["cordoned"] is False


def test_cordon_of_a_machine_that_is_not_started_is_409(api: Api, machine: dict[str, Any]) -> None:
    stopped = api.report(api.create_machine(), "stopped", "exit")
    response = api.client.post(_url(stopped, "/cordon"))
    assert response.status_code == 409
    assert "is stopped; only a started machine can be cordoned" in response.json()["error"]
    assert api.client.get(_url(stopped)).json()["cordoned"] is False


def test_versions_list_each_config_newest_first(api: Api, machine: dict[str, Any]) -> None:
    update = api.client.post(_url(machine), json={"config": {"image": "registry.local/web:2"}})
    assert update.status_code == 200
    versions = api.client.get(_url(machine, "/versions")).json()
    assert [v["version"] for v in versions] == [
        update.json()["instance_id"],
        machine["instance_id"],
    ]
    assert versions[0]["user_config"]["image"] == "registry.local/web:2"
    assert versions[1]["user_config"]["image"] == "registry.local/web:1"


def test_events_are_in_flys_shape(api: Api, machine: dict[str, Any]) -> None:
    api.client.post(_url(machine, "/cordon"))
    events = api.client.get(_url(machine, "/events")).json()
    assert set(events[0]) == {"id", "type", "status", "source", "timestamp", "request"}
    assert (events[0]["type"], events[0]["status"], events[0]["source"]) == (
        "cordon",
        "cordoned",
        "user",
    )
