"""Request shapes Fly's clients send: app ``name``, check ``headers`` as a list."""

from __future__ import annotations

from ferry.model import CheckConfig

from .conftest import Api


def test_app_creation_accepts_flys_name_as_well_as_app_name(api: Api) -> None:
    assert api.client.post("/v1/apps", json={"name": "one"}).status_code == 201
    assert api.client.post("/v1/apps", json={"app_name": "two"}).status_code == 201
    assert [a["name"] for a in api.client.get("/v1/apps").json()["apps"]] == ["one", "two"]


def test_app_creation_needs_exactly_one_name(api: Api) -> None:
    both = api.client.post("/v1/apps", json={"name": "a", "app_name": "b"})
    neither = api.client.post("/v1/apps", json={"org_slug": "personal"})
    for response, said in ((both, "both"), (neither, "neither")):
        assert response.status_code == 400
        assert "'app_name' or 'name'" in response.json()["error"] and said in response.text
    assert api.client.get("/v1/apps").json()["total_apps"] == 0


def test_check_headers_in_flys_list_shape_become_the_dict_every_consumer_reads() -> None:
    fly = CheckConfig.model_validate(
        {"headers": [{"name": "Host", "values": ["a.test"]}, {"name": "X-A", "values": ["1", "2"]}]}
    )
    assert fly.headers == {"Host": "a.test", "X-A": "1, 2"}
    assert CheckConfig.model_validate({"headers": {"Host": "a.test"}}).headers == {"Host": "a.test"}


def test_check_headers_in_a_wrong_shape_are_400_through_the_api(api: Api) -> None:
    api.register_host()
    api.create_app()
    bad = [{"values": ["x"]}, {"name": "H", "values": [1]}, {"name": "H", "value": ["x"]}]
    for headers in bad:
        config = {"image": "x", "checks": {"c": {"port": 8080, "headers": headers}}}
        response = api.client.post("/v1/apps/web/machines", json={"config": config})
        assert response.status_code == 400, response.text
        assert "headers" in response.json()["error"]
    good = {"port": 8080, "headers": [{"name": "Host", "values": ["a.test"]}]}
    created = api.create_machine(config={"image": "x", "checks": {"c": good}})
    assert created["config"]["checks"]["c"]["headers"] == {"Host": "a.test"}
    assert len(api.client.get("/v1/apps/web/machines").json()) == 1


def test_signal_by_number_as_fly_gos_kill_sends_it(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.report(api.create_machine(), "started")
    url = f"/v1/apps/web/machines/{machine['id']}/signal"
    assert api.client.post(url, json={"signal": 9}).status_code == 200
    shown = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    assert shown["pending_signal"] == "SIGKILL"
    bad = api.client.post(url, json={"signal": 99})
    assert bad.status_code == 400 and "unknown signal number 99" in bad.json()["error"]
