"""A stop request's signal and timeout reach the agent's view of the machine, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, FakeClock, open_api


def running_machine(api: Api) -> dict[str, Any]:
    api.register_host()
    api.create_app()
    config = {"image": "registry.local/web:1", "stop_config": {"signal": "SIGTERM", "timeout": 30}}
    machine = api.create_machine(config=config)
    api.report(machine, "started")
    return machine


def shown(api: Api, machine: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    return result


def in_host_snapshot(api: Api, machine: dict[str, Any]) -> dict[str, Any]:
    """The machine as the agent of its host reads it."""
    snapshot = api.client.get(f"/v1/hosts/{machine['host_id']}/machines").json()
    [found] = [m for m in snapshot["machines"] if m["id"] == machine["id"]]
    result: dict[str, Any] = found
    return result


def stop(api: Api, machine: dict[str, Any], **body: Any) -> Any:
    return api.client.post(f"/v1/apps/web/machines/{machine['id']}/stop", json=body)


def test_stop_signal_and_timeout_reach_the_agent_with_the_desired_state(api: Api) -> None:
    machine = running_machine(api)
    assert shown(api, machine)["stop_override"] is None
    assert stop(api, machine, signal="kill", timeout="1s").status_code == 200
    agent_view = in_host_snapshot(api, machine)
    assert agent_view["desired_state"] == "stopped"
    assert agent_view["stop_override"] == {"signal": "SIGKILL", "timeout": "1s"}
    assert agent_view["config"]["stop_config"] == {"signal": "SIGTERM", "timeout": "30s"}
    events = api.client.get(f"/v1/apps/web/machines/{machine['id']}/events").json()
    assert (events[0]["type"], events[0]["request"]) == (
        "stop",
        {"signal": "SIGKILL", "timeout": "1s"},
    )


def test_a_numeric_timeout_is_seconds_and_a_missing_field_stays_unset(api: Api) -> None:
    machine = running_machine(api)
    assert stop(api, machine, timeout=10).status_code == 200
    assert shown(api, machine)["stop_override"] == {"signal": None, "timeout": "10s"}


def test_a_fractional_timeout_is_kept_as_seconds_even_when_tiny(api: Api) -> None:
    machine = running_machine(api)
    assert stop(api, machine, timeout=2.5e-269).status_code == 200  # once a 500
    assert shown(api, machine)["stop_override"] == {"signal": None, "timeout": "0s"}


def test_a_plain_stop_asks_for_the_config_stop(api: Api) -> None:
    machine = running_machine(api)
    assert api.client.post(f"/v1/apps/web/machines/{machine['id']}/stop").status_code == 200
    assert shown(api, machine)["desired_state"] == "stopped"
    assert shown(api, machine)["stop_override"] is None


@pytest.mark.parametrize("again", ["start", "restart"])
def test_the_next_start_or_restart_forgets_the_stop_request(api: Api, again: str) -> None:
    machine = running_machine(api)
    stop(api, machine, signal="SIGKILL", timeout="1s")
    if again == "start":
        api.report(machine, "stopped", "stop")
    response = api.client.post(f"/v1/apps/web/machines/{machine['id']}/{again}")
    assert response.status_code == 200, response.text
    after = shown(api, machine)
    assert (after["desired_state"], after["stop_override"]) == ("started", None)


def test_a_second_stop_changes_nothing(api: Api) -> None:
    machine = running_machine(api)
    stop(api, machine, signal="SIGKILL")
    before = shown(api, machine)
    assert stop(api, machine, signal="SIGQUIT", timeout="9s").status_code == 200
    after = shown(api, machine)
    assert after["stop_override"] == {"signal": "SIGKILL", "timeout": None}
    assert after["revision"] == before["revision"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"signal": "SIGNOPE"}, "SIGNOPE"),
        ({"signal": "SIGKILL", "timeout": "soon"}, "soon"),
        ({"timeout": -3}, "-3"),
        ({"timeout": [1]}, "timeout"),
    ],
)
def test_bad_signal_or_timeout_is_400_naming_it_and_changes_nothing(
    api: Api, body: dict[str, Any], named: str
) -> None:
    machine = running_machine(api)
    before = shown(api, machine)
    response = stop(api, machine, **body)
    assert response.status_code == 400
    assert named in response.json()["error"]
    after = shown(api, machine)
    assert (after["desired_state"], after["stop_override"]) == ("started", None)
    assert after["revision"] == before["revision"]


def test_the_stop_request_survives_a_restart_of_the_server(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    for api in open_api(db, FakeClock()):
        machine = running_machine(api)
        stop(api, machine, signal="SIGKILL", timeout="1s")
    for api in open_api(db, FakeClock()):
        assert in_host_snapshot(api, machine)["stop_override"] == {
            "signal": "SIGKILL",
            "timeout": "1s",
        }


def test_a_restart_stops_the_old_process_as_asked_and_an_update_as_configured(api: Api) -> None:
    machine = running_machine(api)
    url = f"/v1/apps/web/machines/{machine['id']}/restart"
    assert api.client.post(url, params={"signal": "SIGKILL", "timeout": "1s"}).status_code == 200
    assert in_host_snapshot(api, machine)["stop_override"] == {"signal": "SIGKILL", "timeout": "1s"}

    config = {"image": "registry.local/web:2", "stop_config": {"signal": "SIGTERM", "timeout": 30}}
    update = api.client.post(f"/v1/apps/web/machines/{machine['id']}", json={"config": config})
    assert update.status_code == 200, update.text
    assert in_host_snapshot(api, machine)["stop_override"] is None


def test_a_restart_with_a_bad_timeout_is_refused_and_changes_nothing(api: Api) -> None:
    machine = running_machine(api)
    before = shown(api, machine)
    url = f"/v1/apps/web/machines/{machine['id']}/restart"
    answer = api.client.post(url, params={"timeout": "soon"})
    assert answer.status_code == 400 and "soon" in answer.text
    assert shown(api, machine)["revision"] == before["revision"]
