"""Query parameters: each machine route serves its documented ones and refuses the rest."""

from __future__ import annotations

import pytest

from ferry.server.query_params import metadata_filters, unknown_params

from .conftest import Api


def test_unknown_params_names_each_stranger_once_sorted() -> None:
    allowed = frozenset({"force", "kill"})
    assert unknown_params(["kill", "force"], allowed) == []
    assert unknown_params(["zap", "kill", "abc", "zap"], allowed) == ["abc", "zap"]


def test_metadata_wildcard_admits_keys_but_not_an_empty_one() -> None:
    allowed = frozenset({"region", "metadata.*"})
    assert unknown_params(["metadata.role", "region"], allowed) == []
    assert unknown_params(["metadata."], allowed) == ["metadata."]
    assert unknown_params(["metadata.role"], frozenset({"region"})) == ["metadata.role"]


def test_metadata_filters_take_the_pairs_only() -> None:
    pairs = [("metadata.role", "db"), ("region", "ams"), ("metadata.tier", "1")]
    assert metadata_filters(pairs) == {"role": "db", "tier": "1"}


@pytest.fixture
def machine(api: Api) -> dict[str, object]:
    api.register_host()
    api.create_app()
    return api.create_machine()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("POST", ""),
        ("GET", "/{id}"),
        ("POST", "/{id}"),
        ("DELETE", "/{id}"),
        ("POST", "/{id}/start"),
        ("POST", "/{id}/stop"),
        ("POST", "/{id}/restart"),
        ("POST", "/{id}/signal"),
        ("GET", "/{id}/wait"),
        ("GET", "/{id}/events"),
        ("GET", "/{id}/lease"),
        ("POST", "/{id}/lease"),
        ("DELETE", "/{id}/lease"),
        ("GET", "/{id}/metadata"),
        ("POST", "/{id}/metadata/k"),
        ("DELETE", "/{id}/metadata/k"),
        ("POST", "/{id}/cordon"),
        ("POST", "/{id}/uncordon"),
        ("GET", "/{id}/versions"),
        ("GET", "/{id}/ps"),
    ],
)
def test_an_unknown_query_parameter_is_400_naming_it_and_changes_nothing(
    api: Api, machine: dict[str, object], method: str, path: str
) -> None:
    url = "/v1/apps/web/machines" + path.format(id=machine["id"]) + "?bogus=1"
    response = api.client.request(method, url, json={"config": {"image": "x"}, "signal": "INT"})
    assert response.status_code == 400, response.text
    assert "unknown query parameter 'bogus'" in response.json()["error"]
    after = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    assert after["revision"] == machine["revision"]
    assert len(api.client.get("/v1/apps/web/machines").json()) == 1


def test_a_bad_value_of_a_known_parameter_is_400_naming_it(
    api: Api, machine: dict[str, object]
) -> None:
    base = f"/v1/apps/web/machines/{machine['id']}"
    cases = [
        ("GET", "/v1/apps/web/machines?include_deleted=maybe", "include_deleted"),
        ("GET", "/v1/apps/web/machines?summary=2x", "summary"),
        ("GET", "/v1/apps/web/machines?state=sleeping", "sleeping"),
        ("DELETE", f"{base}?kill=perhaps", "kill"),
        ("DELETE", f"{base}?force=perhaps", "force"),
        ("POST", f"{base}/restart?signal=SIGNOPE", "signal"),
        ("POST", f"{base}/restart?timeout=soon", "soon"),
        ("POST", f"{base}/restart?force_stop=true&signal=SIGTERM", "force_stop"),
        ("GET", f"{base}/wait?state=sleeping", "sleeping"),
        ("GET", f"{base}/wait?timeout=-1", "timeout"),
        ("POST", f"{base}/lease?ttl=forever", "ttl"),
        ("POST", f"{base}/lease?ttl=0", "ttl"),
    ]
    for method, url, named in cases:
        response = api.client.request(method, url)
        assert response.status_code == 400, (url, response.text)
        assert named in response.json()["error"], (url, response.json())
    after = api.client.get(base).json()
    assert after["revision"] == machine["revision"]
    assert api.client.get(f"{base}/lease").status_code == 404


def test_wait_takes_fly_gos_repeated_state_and_version(
    api: Api, machine: dict[str, object]
) -> None:
    url = f"/v1/apps/web/machines/{machine['id']}/wait"
    api.report(machine, "stopped", "exit")
    either = api.client.get(f"{url}?state=started&state=stopped&timeout=1")
    assert either.json() == {"ok": True, "state": "stopped"}
    current = api.client.get(f"{url}?state=stopped&version={machine['instance_id']}&timeout=1")
    assert current.status_code == 200
    stale = api.client.get(f"{url}?state=stopped&version=01OLD&timeout=1")
    assert stale.status_code == 409 and "not 01OLD" in stale.json()["error"]
    refused = api.client.get(f"{url}?state=stopped&from_event_id=01X")
    assert refused.status_code == 400 and "from_event_id" in refused.json()["error"]


def test_kill_destroys_a_running_machine_as_force_does(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.report(api.create_machine(), "started")
    url = f"/v1/apps/web/machines/{machine['id']}"
    assert api.client.delete(f"{url}?kill=false").status_code == 409  # fly-go's default
    assert api.client.delete(f"{url}?kill=true").status_code == 200
    assert api.client.get(url).json()["desired_state"] == "destroyed"


def test_restart_force_stop_kills_the_old_process(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.report(api.create_machine(), "started")
    url = f"/v1/apps/web/machines/{machine['id']}"
    assert api.client.post(f"{url}/restart?force_stop=false").status_code == 200
    assert api.client.get(url).json()["stop_override"] is None
    assert api.client.post(f"{url}/restart?force_stop=true&timeout=1s").status_code == 200
    assert api.client.get(url).json()["stop_override"] == {"signal": "SIGKILL", "timeout": "1s"}
