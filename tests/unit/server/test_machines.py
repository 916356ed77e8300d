"""Creating machines and changing their desired state through the API."""

from __future__ import annotations

import ipaddress

from .conftest import Api


def test_created_machine_lands_in_its_hosts_snapshot_with_an_address(api: Api) -> None:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.create_app()
    machine = api.create_machine(region="ams")
    assert machine["state"] == "created" and machine["desired_state"] == "started"
    assert len(machine["id"]) == 14 and int(machine["id"], 16) >= 0
    snapshot = api.client.get("/v1/hosts/ams-1/machines").json()
    assert [m["id"] for m in snapshot["machines"]] == [machine["id"]]
    assert ipaddress.ip_address(machine["host_ip"]) in ipaddress.ip_network("10.1.0.0/24")
    assert machine["host_ip"] == "10.1.0.2"
    events = api.client.get(f"/v1/apps/web/machines/{machine['id']}/events").json()
    assert (events[0]["type"], events[0]["status"], events[0]["source"]) == (
        "launch",
        "created",
        "user",
    )


def test_addresses_are_lowest_free_and_reused_after_destroy(api: Api) -> None:
    api.register_host()
    api.create_app()
    first = api.create_machine(skip_launch=True)
    second = api.create_machine(skip_launch=True)
    assert (first["host_ip"], second["host_ip"]) == ("10.1.0.2", "10.1.0.3")
    assert api.client.delete(f"/v1/apps/web/machines/{first['id']}").status_code == 200
    api.report(first, "destroyed", "destroy")
    assert api.create_machine()["host_ip"] == "10.1.0.2"


def test_default_region_is_the_first_known(api: Api) -> None:
    api.register_host("sin-1", "sin", subnet="10.3.0.0/24")
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.create_app()
    assert api.create_machine()["region"] == "iad"


def test_unknown_region_names_the_known_ones(api: Api) -> None:
    api.register_host("ams-1", "ams")
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.create_app()
    response = api.client.post(
        "/v1/apps/web/machines", json={"region": "xyz", "config": {"image": "x"}}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unknown region 'xyz'; known regions: ams, iad"


def test_too_big_machine_is_422_naming_region_and_shortfall(api: Api) -> None:
    api.register_host(cpus=2, memory_mb=1024)
    api.create_app()
    response = api.client.post(
        "/v1/apps/web/machines",
        json={"region": "ams", "config": {"image": "x", "guest": {"cpus": 8, "memory_mb": 512}}},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "ams" in error and "cpu" in error.lower()


def test_invalid_config_is_400_naming_the_field(api: Api) -> None:
    api.register_host()
    api.create_app()
    no_image = api.client.post("/v1/apps/web/machines", json={"config": {"env": {}}})
    assert no_image.status_code == 400 and "config.image" in no_image.json()["error"]
    bad_type = api.client.post(
        "/v1/apps/web/machines", json={"config": {"image": "x", "guest": {"cpus": "many"}}}
    )
    assert bad_type.status_code == 400 and "config.guest.cpus" in bad_type.json()["error"]
    bad_size = api.client.post(
        "/v1/apps/web/machines", json={"config": {"image": "x", "size": "huge"}}
    )
    assert bad_size.status_code == 400 and "huge" in bad_size.json()["error"]


def test_invalid_json_is_400_not_500(api: Api) -> None:
    api.create_app()
    response = api.client.post(
        "/v1/apps/web/machines",
        content=b'{"config": {"image": ',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    wrong = api.client.post("/v1/apps", json=["not", "an", "object"])
    assert wrong.status_code == 400


def test_unknown_machine_is_404_naming_id_and_app(api: Api) -> None:
    api.create_app()
    response = api.client.get("/v1/apps/web/machines/0123456789abcd")
    assert response.status_code == 404
    assert response.json()["error"] == "machine '0123456789abcd' not found in app 'web'"


def test_lifecycle_changes_and_impossible_ones(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    mid = machine["id"]
    api.report(machine, "started")
    refused = api.client.delete(f"/v1/apps/web/machines/{mid}")
    assert refused.status_code == 409 and "force" in refused.json()["hint"]

    stop = api.client.post(f"/v1/apps/web/machines/{mid}/stop", json={"signal": "SIGTERM"})
    assert stop.status_code == 200
    assert api.client.get(f"/v1/apps/web/machines/{mid}").json()["desired_state"] == "stopped"
    api.report(machine, "stopped", "exit", exit_code=0)
    start = api.client.post(f"/v1/apps/web/machines/{mid}/start")
    assert start.json() == {"previous_state": "stopped"}
    after_start = api.client.get(f"/v1/apps/web/machines/{mid}").json()
    assert after_start["generation"] == machine["generation"] + 1

    api.report(machine, "started")
    assert api.client.post(f"/v1/apps/web/machines/{mid}/restart").status_code == 200
    signal = api.client.post(f"/v1/apps/web/machines/{mid}/signal", json={"signal": "usr1"})
    assert signal.status_code == 200
    signalled = api.client.get(f"/v1/apps/web/machines/{mid}").json()
    assert signalled["pending_signal"] == "SIGUSR1"
    assert signalled["generation"] == after_start["generation"] + 2
    bad = api.client.post(f"/v1/apps/web/machines/{mid}/signal", json={"signal": "SIGNOPE"})
    assert bad.status_code == 400 and "SIGNOPE" in bad.json()["error"]

    gone = api.client.delete(f"/v1/apps/web/machines/{mid}", params={"force": "true"})
    assert gone.status_code == 200
    again = api.client.post(f"/v1/apps/web/machines/{mid}/start")
    assert again.status_code == 409 and "cannot be started" in again.json()["error"]


def test_update_gives_a_new_instance_and_keeps_region(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    api.report(machine, "started")
    url = f"/v1/apps/web/machines/{machine['id']}"
    new_config = {"image": "registry.local/web:2"}
    updated = api.client.post(url, json={"config": new_config}).json()
    assert updated["instance_id"] != machine["instance_id"]
    assert (updated["state"], updated["desired_state"]) == ("replacing", "started")
    assert updated["config"]["image"] == "registry.local/web:2"
    moved = api.client.post(url, json={"config": new_config, "region": "iad"})
    assert moved.status_code == 400 and "cannot change" in moved.json()["error"]
    stale = api.client.post(
        url, json={"config": new_config, "current_version": machine["instance_id"]}
    )
    assert stale.status_code == 409
    # A report about the old instance is kept as an event but changes nothing.
    old = api.report(machine, "stopped", "exit")
    assert old["state"] == "replacing"


def test_full_host_never_gets_placements_and_machines_spread(api: Api) -> None:
    api.register_host("ams-1", cpus=1, memory_mb=256)
    api.register_host("ams-2", cpus=1, memory_mb=256, subnet="10.1.1.0/24")
    api.create_app()
    hosts = {api.create_machine()["host_id"], api.create_machine()["host_id"]}
    assert hosts == {"ams-1", "ams-2"}
    full = api.client.post("/v1/apps/web/machines", json={"config": {"image": "x"}})
    assert full.status_code == 422


def test_duplicate_machine_name_is_409(api: Api) -> None:
    api.register_host()
    api.create_app()
    api.create_machine(name="worker")
    again = api.client.post(
        "/v1/apps/web/machines", json={"name": "worker", "config": {"image": "x"}}
    )
    assert again.status_code == 409 and "'worker'" in again.json()["error"]


def test_logs_uploaded_by_the_agent_are_served(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    upload = api.client.post(
        f"/v1/hosts/ams-1/machines/{machine['id']}/logs", json={"lines": ["a", "b", "c"]}
    )
    assert upload.status_code == 200
    logs = api.client.get(f"/v1/apps/web/machines/{machine['id']}/logs", params={"tail": 2})
    assert logs.json() == {"lines": ["b", "c"]}
