"""Suspend through the Machines API: Fly's route and states, its refusals, and the
autostop that suspends instead of stopping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, FakeClock, open_api


def running_machine(api: Api, config: dict[str, Any] | None = None) -> dict[str, Any]:
    api.register_host()
    api.create_app()
    machine = api.create_machine(config=config or {"image": "registry.local/web:1"})
    api.report(machine, "started")
    return machine


def post(api: Api, machine: dict[str, Any], verb: str) -> Any:
    return api.client.post(f"/v1/apps/web/machines/{machine['id']}/{verb}")


def shown(api: Api, machine: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    return result


def suspended(api: Api) -> dict[str, Any]:
    machine = running_machine(api)
    assert post(api, machine, "suspend").status_code == 200
    api.report(machine, "suspended", "suspend")
    return machine


def test_suspend_asks_the_agent_to_freeze_and_is_recorded(api: Api) -> None:
    machine = running_machine(api)
    response = post(api, machine, "suspend")
    assert response.status_code == 200, response.text
    after = shown(api, machine)
    assert (after["state"], after["desired_state"]) == ("started", "suspended")
    assert after["events"][0]["type"] == "suspend"
    api.report(machine, "suspended", "suspend")
    assert shown(api, machine)["state"] == "suspended"
    wait = api.client.get(
        f"/v1/apps/web/machines/{machine['id']}/wait", params={"state": "suspended", "timeout": 1}
    )
    assert wait.json() == {"ok": True, "state": "suspended"}


def test_suspending_twice_changes_nothing(api: Api) -> None:
    machine = suspended(api)
    revision = shown(api, machine)["revision"]
    assert post(api, machine, "suspend").status_code == 200
    assert shown(api, machine)["revision"] == revision


@pytest.mark.parametrize("setup", ["stopped", "created"])
def test_suspend_of_a_machine_that_is_not_started_is_409_and_changes_nothing(
    api: Api, setup: str
) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine(skip_launch=setup == "created")
    if setup == "stopped":
        api.report(machine, "started")
        post(api, machine, "stop")
        api.report(machine, "stopped", "stop")
    before = shown(api, machine)
    response = post(api, machine, "suspend")
    assert response.status_code == 409
    assert (
        f"machine is {before['state']}; only a started machine can be suspended"
        in (response.json()["error"])
    )
    assert shown(api, machine)["revision"] == before["revision"]


def test_suspend_of_an_unknown_machine_is_404(api: Api) -> None:
    running_machine(api)
    assert post(api, {"id": "nope"}, "suspend").status_code == 404


def test_start_of_a_suspended_machine_resumes_it_without_a_new_run(api: Api) -> None:
    machine = suspended(api)
    generation = shown(api, machine)["generation"]
    response = post(api, machine, "start")
    assert response.json() == {"previous_state": "suspended"}
    after = shown(api, machine)
    assert (after["desired_state"], after["generation"]) == ("started", generation)


def test_restart_of_a_suspended_machine_asks_for_a_fresh_process(api: Api) -> None:
    machine = suspended(api)
    generation = shown(api, machine)["generation"]
    assert post(api, machine, "restart").status_code == 200
    after = shown(api, machine)
    assert (after["desired_state"], after["generation"]) == ("started", generation + 1)


def test_stop_and_destroy_of_a_suspended_machine_need_no_force(api: Api) -> None:
    machine = suspended(api)
    assert post(api, machine, "stop").status_code == 200
    assert shown(api, machine)["desired_state"] == "stopped"
    other = api.create_machine()
    api.report(other, "started")
    post(api, other, "suspend")
    api.report(other, "suspended", "suspend")
    assert api.client.delete(f"/v1/apps/web/machines/{other['id']}").status_code == 200


def test_a_signal_to_a_suspended_machine_is_refused(api: Api) -> None:
    machine = suspended(api)
    response = api.client.post(
        f"/v1/apps/web/machines/{machine['id']}/signal", json={"signal": "SIGUSR1"}
    )
    assert response.status_code == 409
    assert "a suspended machine cannot be signalled" in response.json()["error"]


def test_update_of_a_suspended_machine_drops_its_memory_and_leaves_it_stopped(api: Api) -> None:
    machine = suspended(api)
    body = {"config": {"image": "registry.local/web:2"}}
    response = api.client.post(f"/v1/apps/web/machines/{machine['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["desired_state"] == "stopped"
    assert response.json()["instance_id"] != machine["instance_id"]


def test_suspended_state_survives_a_server_restart(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "state.db"
    api_gen = open_api(db, clock)
    api = next(api_gen)
    machine = suspended(api)
    api_gen.close()
    reopened = open_api(db, clock)
    after = shown(next(reopened), machine)
    reopened.close()
    assert (after["state"], after["desired_state"]) == ("suspended", "suspended")


SERVICE = {"internal_port": 8080, "autostop": "suspend", "min_machines_running": 0}


def test_autostop_suspend_suspends_an_idle_machine(api: Api) -> None:
    config = {"image": "registry.local/web:1", "services": [SERVICE]}
    machine = running_machine(api, config)
    traffic = {
        "window_seconds": 60,
        "apps": {
            "web": {
                "requests": {"2xx": 1},
                "in_flight": 0,
                "machines": {machine["id"]: {"in_flight": 0, "requests_total": 1}},
            }
        },
    }
    for advance in (0, 300):
        api.clock.advance(advance)
        assert api.client.post("/v1/edges/ams/traffic", json=traffic).status_code == 200
        line = api.plane.autoscaler.run_once()
    assert f"web: suspend {machine['id']} (done)" in line
    assert shown(api, machine)["desired_state"] == "suspended"
    events = api.client.get(f"/v1/apps/web/machines/{machine['id']}/events").json()
    assert (events[0]["type"], events[0]["status"]) == ("autoscale", "suspend")


def test_suspend_honours_a_held_lease(api: Api) -> None:
    machine = running_machine(api)
    lease = api.client.post(f"/v1/apps/web/machines/{machine['id']}/lease", json={"ttl": 30})
    nonce = lease.json()["data"]["nonce"]
    refused = post(api, machine, "suspend")
    assert refused.status_code == 409 and "lease" in refused.json()["error"]
    assert shown(api, machine)["desired_state"] == "started"
    url = f"/v1/apps/web/machines/{machine['id']}/suspend"
    allowed = api.client.post(url, headers={"fly-machine-lease-nonce": nonce})
    assert allowed.status_code == 200
    assert shown(api, machine)["desired_state"] == "suspended"


def test_suspend_refuses_an_unknown_query_parameter(api: Api) -> None:
    machine = running_machine(api)
    response = api.client.post(f"/v1/apps/web/machines/{machine['id']}/suspend?snapshot=1")
    assert response.status_code == 400 and "snapshot" in response.json()["error"]
