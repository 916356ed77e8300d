"""What agents do: register, report status, heartbeat; liveness marks silent hosts down."""

from __future__ import annotations

import time
from pathlib import Path

from ferry.server.liveness import hosts_to_mark_down, liveness_reason

from .conftest import Api, FakeClock, open_api


def test_status_reports_update_state_and_events(api: Api) -> None:
    api.register_host()
    api.create_app()
    machine = api.create_machine()
    api.report(machine, "starting")
    reported = api.report(machine, "started", restart_count=2)
    assert (reported["state"], reported["restart_count"]) == ("started", 2)
    shown = api.client.get(f"/v1/apps/web/machines/{machine['id']}").json()
    assert shown["state"] == "started"
    events = api.client.get(f"/v1/apps/web/machines/{machine['id']}/events").json()
    assert [(e["status"], e["source"]) for e in events[:2]] == [
        ("started", "flyd"),
        ("starting", "flyd"),
    ]


def test_reports_for_machines_of_other_hosts_are_404(api: Api) -> None:
    api.register_host("ams-1")
    api.register_host("ams-2", subnet="10.1.1.0/24")
    api.create_app()
    machine = api.create_machine()
    other = "ams-2" if machine["host_id"] == "ams-1" else "ams-1"
    response = api.client.post(
        f"/v1/hosts/{other}/machines/{machine['id']}/status",
        json={
            "state": "started",
            "instance_id": machine["instance_id"],
            "event": {"type": "start", "status": "started"},
        },
    )
    assert response.status_code == 404 and other in response.json()["error"]


def test_bad_registration_is_400(api: Api) -> None:
    body = {"id": "h", "region": "ams", "address": "x", "cpus": 1, "memory_mb": 512}
    subnet = api.client.post("/v1/hosts", json={**body, "machine_subnet": "not-a-net"})
    assert subnet.status_code == 400 and "not-a-net" in subnet.json()["error"]
    cpus = api.client.post("/v1/hosts", json={**body, "cpus": 0, "machine_subnet": "10.0.0.0/24"})
    assert cpus.status_code == 400 and "cpus" in cpus.json()["error"]


def test_silent_host_goes_down_and_gets_no_placements(api: Api, clock: FakeClock) -> None:
    api.register_host("ams-1")
    api.register_host("ams-2", subnet="10.1.1.0/24")
    api.create_app()
    clock.advance(8)
    assert api.client.post("/v1/hosts/ams-2/heartbeat").status_code == 200
    clock.advance(4.3)
    reason = api.plane.liveness.run_once()
    assert reason == "host ams-1 down: no heartbeat for 12.3s; 1 host up"
    statuses = {h["id"]: h["status"] for h in api.client.get("/v1/hosts").json()}
    assert statuses == {"ams-1": "down", "ams-2": "up"}
    assert {api.create_machine()["host_id"] for _ in range(3)} == {"ams-2"}

    assert api.client.post("/v1/hosts/ams-1/heartbeat").status_code == 200
    assert api.client.get("/v1/hosts").json()[0]["status"] == "up"


def test_heartbeat_of_unknown_host_is_404_with_hint(api: Api) -> None:
    response = api.client.post("/v1/hosts/ghost/heartbeat")
    assert response.status_code == 404 and "register" in response.json()["hint"]


def test_liveness_loop_runs_on_its_own(tmp_path: Path, clock: FakeClock) -> None:
    for api in open_api(tmp_path / "s.db", clock, run_liveness=True, host_down_after=0.4):
        api.register_host()
        clock.advance(5)
        deadline = time.monotonic() + 3
        status = "up"
        while status == "up" and time.monotonic() < deadline:
            time.sleep(0.05)
            status = api.client.get("/v1/hosts").json()[0]["status"]
        assert status == "down"


def test_liveness_decision_is_pure(clock: FakeClock, api: Api) -> None:
    api.register_host()
    host = api.plane.store.get_host("ams-1")
    assert hosts_to_mark_down([host], clock.now(), 10) == []
    clock.advance(10.5)
    assert hosts_to_mark_down([host], clock.now(), 10) == [host]
    assert liveness_reason([], clock.now(), 10) == "no hosts registered"
