"""The autoscaler follows the machines the edge routes to: a worker group is never cloned for
traffic, nor stopped as idle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, FakeClock, open_api

SERVICE = {"internal_port": 8080, "autostop": "stop", "concurrency": {"soft_limit": 5}}
WEB = {
    "image": "registry.local/web:1",
    "env": {"PRIMARY_REGION": "ams"},
    "metadata": {"fly_process_group": "web"},
    "services": [SERVICE],
}
WORKER = {
    "image": "registry.local/web:1",
    "env": {"PRIMARY_REGION": "ams"},
    "metadata": {"fly_process_group": "worker"},
    "init": {"cmd": ["bin/worker"]},
}


@pytest.fixture
def api(tmp_path: Path, clock: FakeClock) -> Iterator[Api]:
    yield from open_api(tmp_path / "state.db", clock)


def started(api: Api, region: str, config: dict[str, Any]) -> dict[str, Any]:
    machine = api.create_machine(region=region, config=config)
    api.report(machine, "started")
    return machine


def traffic(api: Api, region: str, in_flight: int, **machines: int) -> None:
    body = {
        "window_seconds": 60,
        "apps": {
            "web": {
                "requests": {"2xx": 100},
                "in_flight": in_flight,
                "machines": {m: {"in_flight": 0, "requests_total": n} for m, n in machines.items()},
            }
        },
    }
    assert api.client.post(f"/v1/edges/{region}/traffic", json=body).status_code == 200


def test_new_machines_copy_a_web_machine_and_the_worker_is_left_alone(api: Api) -> None:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    api.create_app("web")
    web = started(api, "ams", WEB)
    worker = started(api, "ams", WORKER)  # the newest machine: it must not be the template
    policy = {"regions": ["ams", "sin"], "min_per_region": 0, "scale_out_after": "30s"}
    assert api.client.put("/v1/apps/web/autoscale", json=policy).status_code == 200

    traffic(api, "sin", 12, **{web["id"]: 5})
    api.plane.autoscaler.run_once()
    api.clock.advance(301)
    traffic(api, "sin", 12, **{web["id"]: 5})
    api.plane.autoscaler.run_once()

    machines = api.client.get("/v1/apps/web/machines").json()
    in_sin = [m for m in machines if m["region"] == "sin"]
    assert in_sin and all(m["config"]["metadata"]["fly_process_group"] == "web" for m in in_sin)
    current = next(m for m in machines if m["id"] == worker["id"])
    assert current["desired_state"] == "started"  # idle autostop never touches the worker
