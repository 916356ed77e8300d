"""The autoscaler loop against the real API and a real SQLite store, with a steered clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, FakeClock, open_api

SERVICE = {
    "internal_port": 8080,
    "autostop": "stop",
    "min_machines_running": 0,
    "concurrency": {"type": "requests", "soft_limit": 5},
}
CONFIG = {"image": "registry.local/web:1", "env": {"PRIMARY_REGION": "ams"}, "services": [SERVICE]}


@pytest.fixture
def api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    yield from open_api(tmp_path / "state.db", clock)


def started_machine(api: Api, region: str) -> dict[str, Any]:
    machine = api.create_machine(region=region, config=CONFIG)
    api.report(machine, "started")
    return machine


def report(api: Api, region: str, requests: int, in_flight: int, **machines: int) -> None:
    body = {
        "window_seconds": 60,
        "apps": {
            "web": {
                "requests": {"2xx": requests},
                "in_flight": in_flight,
                "machines": {m: {"in_flight": 0, "requests_total": n} for m, n in machines.items()},
            }
        },
    }
    response = api.client.post(f"/v1/edges/{region}/traffic", json=body)
    assert response.status_code == 200, response.text


def live(api: Api, region: str) -> list[dict[str, Any]]:
    machines = api.client.get("/v1/apps/web/machines", params={"region": region}).json()
    return [m for m in machines if m["desired_state"] != "destroyed"]


@pytest.fixture
def web(api: Api) -> Api:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    api.create_app("web")
    return api


def test_sustained_demand_in_sin_creates_machines_there_with_explained_events(web: Api) -> None:
    started_machine(web, "ams")
    policy = {"regions": ["ams", "sin"], "min_per_region": 0, "scale_out_after": "30s"}
    assert web.client.put("/v1/apps/web/autoscale", json=policy).status_code == 200

    report(web, "sin", 100, 12)
    web.plane.autoscaler.run_once()
    web.clock.advance(31)
    report(web, "sin", 400, 12)
    line = web.plane.autoscaler.run_once()

    created = live(web, "sin")
    assert len(created) == 3 and "web: create sin (created" in line
    events = web.client.get(f"/v1/apps/web/machines/{created[0]['id']}/events").json()
    decision = next(e for e in events if e["type"] == "autoscale")
    assert decision["source"] == "ferry" and decision["status"] == "create"
    assert decision["request"]["reason"] == (
        "sin: concurrency 12.0 / target 5 needs 3 machines, 0 running, "
        "for 31s (>= scale_out_after 30s): create"
    )
    status = web.client.get("/v1/apps/web/autoscale/status").json()
    assert status["regions"]["sin"]["desired"] == 3
    assert status["regions"]["sin"]["rate"] == pytest.approx(300 / 31, rel=1e-3)
    assert status["regions"]["sin"]["started"] == 3
    assert [d["kind"] for d in status["decisions"]] == ["create"] * 3
    assert status["policy"]["scale_out_after"] == 30.0 and status["enabled"] is True


def test_idle_machines_are_all_stopped_without_a_minimum(web: Api) -> None:
    first = started_machine(web, "ams")
    second = started_machine(web, "ams")
    report(web, "ams", 10, 0, **{first["id"]: 5, second["id"]: 5})
    web.plane.autoscaler.run_once()

    web.clock.advance(299)
    report(web, "ams", 10, 0, **{first["id"]: 5, second["id"]: 5})
    web.plane.autoscaler.run_once()
    assert {m["desired_state"] for m in live(web, "ams")} == {"started"}

    web.clock.advance(1)
    report(web, "ams", 10, 0, **{first["id"]: 5, second["id"]: 5})
    web.plane.autoscaler.run_once()

    assert [m["desired_state"] for m in live(web, "ams")] == ["stopped", "stopped"]
    status = web.client.get("/v1/apps/web/autoscale/status").json()
    assert status["policy"] is None and status["enabled"] is False
    assert "idle for 300s (>= stop_idle_after 300s)" in status["decisions"][0]["reason"]


def test_idle_stop_respects_min_machines_running_in_the_primary_region(web: Api) -> None:
    config = {**CONFIG, "services": [{**SERVICE, "min_machines_running": 1}]}
    machines = [web.create_machine(region="ams", config=config) for _ in range(2)]
    for machine in machines:
        web.report(machine, "started")
    report(web, "ams", 0, 0)
    web.plane.autoscaler.run_once()
    web.clock.advance(600)
    report(web, "ams", 0, 0)
    web.plane.autoscaler.run_once()

    assert sorted(m["desired_state"] for m in live(web, "ams")) == ["started", "stopped"]


def test_policy_endpoints_validate_and_round_trip(web: Api) -> None:
    missing = web.client.get("/v1/apps/web/autoscale")
    assert missing.status_code == 404 and "no autoscale policy" in missing.json()["error"]

    bad = web.client.put("/v1/apps/web/autoscale", json={"min_per_region": 5, "max_per_region": 2})
    assert bad.status_code == 400 and "must not exceed max_per_region" in bad.json()["error"]

    good = web.client.put(
        "/v1/apps/web/autoscale", json={"regions": ["sin"], "scale_in_after": "2m"}
    )
    assert good.status_code == 200 and good.json()["scale_in_after"] == 120.0
    assert web.client.get("/v1/apps/web/autoscale").json()["regions"] == ["sin"]
    assert web.client.delete("/v1/apps/web/autoscale").json() == {"ok": True, "deleted": True}
    assert web.client.get("/v1/apps/ghost/autoscale/status").status_code == 404
