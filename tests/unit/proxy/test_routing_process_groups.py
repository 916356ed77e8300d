"""A two-group app through the edge's routing: machines of a group without services
(a worker) are never a target, however near or idle they are."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from ferry.config import parse_app_config
from ferry.model import DesiredState, Machine, MachineState
from ferry.proxy.routes import backend_from_machine
from ferry.proxy.routing import Choice, NoRoute, RoutePrefs, route

NOW = datetime(2026, 12, 1, tzinfo=UTC)
CONFIG = parse_app_config(
    '[processes]\nweb = "server"\nworker = "worker"\n'
    '[http_service]\ninternal_port = 8080\nprocesses = ["web"]\n'
)


def machine(machine_id: str, region: str, group: str) -> Machine:
    return Machine(
        id=machine_id, name=machine_id, app_name="shop", state=MachineState.STARTED,
        desired_state=DesiredState.STARTED, region=region, instance_id=f"{machine_id}-i",
        private_ip="fdaa:0:1:0:1:0:1:2", host_ip="10.0.0.2",
        config=CONFIG.machine_config("img", group=group),
        host_id=f"{region}-1", created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def pick(machines: list[Machine], prefs: RoutePrefs | None = None) -> Choice | NoRoute:
    backends = [backend_from_machine(m) for m in machines]
    rtt = {"ams": 0.0, "iad": 80.0}
    return route(backends, "ams", rtt, {}, {}, prefs or RoutePrefs(), random.Random(1))


def test_the_worker_next_door_is_passed_over_for_a_web_machine_far_away() -> None:
    result = pick([machine("worker1", "ams", "worker"), machine("web1", "iad", "web")])

    assert isinstance(result, Choice) and result.backend.machine_id == "web1"


def test_an_app_of_workers_only_has_no_route() -> None:
    result = pick([machine("worker1", "ams", "worker")])

    assert isinstance(result, NoRoute) and result.kind == "no_service"


def test_forcing_the_worker_finds_no_target() -> None:
    machines = [machine("worker1", "ams", "worker"), machine("web1", "ams", "web")]

    result = pick(machines, RoutePrefs(force_instance="worker1"))

    assert isinstance(result, NoRoute)
