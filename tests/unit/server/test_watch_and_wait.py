"""Long-polls: the agent's watch and the user's wait wake on a write, without busy loops."""

from __future__ import annotations

import threading
import time
from typing import Any

from .conftest import Api


def _in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        result["response"] = call()
        result["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _until_parked(api: Api, waiters: int = 1) -> None:
    """Until ``waiters`` long-polls wait in the server's change notifier (bounded, 5 s)."""
    deadline = time.monotonic() + 5
    while len(api.plane.notifier._waiters) < waiters:
        assert time.monotonic() < deadline, "the long-poll never started waiting"
        time.sleep(0.005)


def test_watch_returns_at_once_for_a_new_agent(api: Api) -> None:
    api.register_host()
    started = time.monotonic()
    body = api.client.get("/v1/hosts/ams-1/machines", params={"timeout": 5}).json()
    assert time.monotonic() - started < 0.5
    assert body == {"resource_version": 1, "machines": []}
    # The next call, with the version it was given, waits instead of spinning.
    started = time.monotonic()
    again = api.client.get("/v1/hosts/ams-1/machines", params={"since": 1, "timeout": 0.3})
    assert time.monotonic() - started >= 0.3
    assert again.json() == body


def test_watch_wakes_promptly_after_a_write_to_its_host(api: Api) -> None:
    api.register_host()
    api.create_app()
    since = api.client.get("/v1/hosts/ams-1/machines").json()["resource_version"]
    api.create_machine()
    since = api.client.get("/v1/hosts/ams-1/machines").json()["resource_version"]
    thread, result = _in_background(
        lambda: api.client.get("/v1/hosts/ams-1/machines", params={"since": since, "timeout": 10})
    )
    _until_parked(api)
    assert "response" not in result, "the watch answered before anything changed"
    written = time.monotonic()
    machine = api.create_machine()
    thread.join(timeout=5)
    assert result["at"] - written < 0.5
    body = result["response"].json()
    assert body["resource_version"] > since
    assert machine["id"] in [m["id"] for m in body["machines"]]


def test_watch_ignores_other_hosts_and_times_out_with_the_snapshot(api: Api) -> None:
    api.register_host("ams-1", "ams")
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.create_app()
    api.create_machine(region="ams")
    since = api.client.get("/v1/hosts/ams-1/machines").json()["resource_version"]
    thread, result = _in_background(
        lambda: api.client.get("/v1/hosts/ams-1/machines", params={"since": since, "timeout": 0.6})
    )
    started = time.monotonic()
    api.create_machine(region="iad")
    thread.join(timeout=5)
    waited = result["at"] - started
    assert 0.4 < waited < 2.0
    assert len(result["response"].json()["machines"]) == 1


def test_wait_returns_when_the_agent_reports_started(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    url = f"/v1/apps/web/machines/{machine['id']}/wait"
    thread, result = _in_background(
        lambda: api.client.get(url, params={"state": "started", "timeout": 10})
    )
    _until_parked(api)
    assert "response" not in result
    reported = time.monotonic()
    api.report(machine, "started")
    thread.join(timeout=5)
    assert result["at"] - reported < 0.5
    assert result["response"].json() == {"ok": True, "state": "started"}


def test_wait_times_out_with_408_naming_the_current_state(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    api.report(machine, "starting")
    response = api.client.get(
        f"/v1/apps/web/machines/{machine['id']}/wait", params={"state": "started", "timeout": 0.3}
    )
    assert response.status_code == 408
    assert response.json()["error"] == (
        f"timeout waiting for machine {machine['id']} to be started (it is starting)"
    )


def test_wait_for_started_on_a_failed_machine_is_409_with_exit_code(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    api.report(machine, "failed", "exit", exit_code=3)
    response = api.client.get(f"/v1/apps/web/machines/{machine['id']}/wait", params={"timeout": 5})
    assert response.status_code == 409 and "exit code 3" in response.json()["error"]
    too_long = api.client.get(
        f"/v1/apps/web/machines/{machine['id']}/wait", params={"timeout": 301}
    )
    assert too_long.status_code == 400
