"""``GET …/machines/{id}/ps``: fly-go's ProcessStat list from the agent's latest report,
its age in ``Ferry-Ps-Age``, 409 for a machine that is not started, 503 for none fresh;
the agents' reports are bounded and name only their own machines."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ferry.model.processes import MAX_PROCESSES, ProcessReport
from ferry.server.processes import MAX_AGE_SECONDS

from .conftest import Api

FLY_FIELDS = {"pid", "stime", "rtime", "command", "directory", "cpu", "rss", "listen_sockets"}


@pytest.fixture
def machine(api: Api) -> dict[str, Any]:
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    api.create_app()
    api.plane.processes.first_wait = 0.05  # no report in a test means none is coming
    return api.report(api.create_machine(region="ams"), "started")


def process(pid: int, command: str, rss: int = 4096, **extra: Any) -> dict[str, Any]:
    stat = {"pid": pid, "stime": 1_700_000_000, "rtime": 5, "command": command}
    return {**stat, "directory": "/", "cpu": 0, "rss": rss, "listen_sockets": [], **extra}


def report_body(machine: dict[str, Any], processes: list[dict[str, Any]]) -> dict[str, Any]:
    entry = {"instance_id": machine["instance_id"], "processes": processes}
    return {"machines": {machine["id"]: entry}}


def send(api: Api, host: str, body: dict[str, Any]) -> Any:
    return api.client.post(f"/v1/hosts/{host}/processes", json=body)


def ps(api: Api, machine: dict[str, Any], query: str = "") -> Any:
    return api.client.get(f"/v1/apps/web/machines/{machine['id']}/ps{query}")


def test_ps_answers_the_reported_processes_in_flys_shape_with_their_age(
    api: Api, machine: dict[str, Any]
) -> None:
    listening = [{"proto": "tcp", "address": "0.0.0.0:8080"}]
    processes = [process(12, "httpd -p 8080", listen_sockets=listening), process(10, "sh")]
    assert send(api, "ams-1", report_body(machine, processes)).status_code == 200
    api.clock.advance(3)
    response = ps(api, machine)
    assert response.status_code == 200, response.text
    assert response.headers["Ferry-Ps-Age"] == "3.0"
    answered = response.json()
    assert [p["pid"] for p in answered] == [10, 12]  # Fly's default: by pid
    assert all(set(p) == FLY_FIELDS for p in answered)
    assert answered[1]["command"] == "httpd -p 8080"
    assert answered[1]["listen_sockets"] == listening


def test_sort_by_and_order_are_flys(api: Api, machine: dict[str, Any]) -> None:
    processes = [process(10, "sh", rss=100), process(11, "big", rss=900), process(12, "x", rss=500)]
    send(api, "ams-1", report_body(machine, processes))
    by_rss = ps(api, machine, "?sort_by=rss&order=desc").json()
    assert [p["pid"] for p in by_rss] == [11, 12, 10]
    for query, name in (("?sort_by=colour", "sort_by"), ("?order=up", "order")):
        refused = ps(api, machine, query)
        assert refused.status_code == 400 and name in refused.json()["error"]


def test_an_unknown_machine_is_404(api: Api, machine: dict[str, Any]) -> None:
    response = api.client.get("/v1/apps/web/machines/nosuchmachine/ps")
    assert response.status_code == 404


def test_a_machine_that_is_not_started_is_409_naming_its_state(
    api: Api, machine: dict[str, Any]
) -> None:
    send(api, "ams-1", report_body(machine, [process(10, "sh")]))
    stopped = api.report(machine, "stopped", "exit", exit_code=0)
    response = ps(api, stopped)
    assert response.status_code == 409
    assert "is stopped" in response.json()["error"] and "start" in response.json()["hint"]


def test_no_report_and_a_stale_report_are_503(api: Api, machine: dict[str, Any]) -> None:
    none_yet = ps(api, machine)
    assert none_yet.status_code == 503 and "has not reported" in none_yet.json()["error"]
    send(api, "ams-1", report_body(machine, [process(10, "sh")]))
    api.clock.advance(MAX_AGE_SECONDS + 1)
    assert ps(api, machine).status_code == 503


def test_a_report_of_an_older_instance_is_not_answered(api: Api, machine: dict[str, Any]) -> None:
    old = {**machine, "instance_id": "01OLDINSTANCE"}
    assert send(api, "ams-1", report_body(old, [process(10, "sh")])).status_code == 200
    assert ps(api, machine).status_code == 503


def test_ps_waits_for_the_first_report(api: Api, machine: dict[str, Any]) -> None:
    api.plane.processes.first_wait = 10.0
    report = ProcessReport.model_validate(report_body(machine, [process(10, "sh")]))
    arrives = threading.Timer(0.2, api.plane.processes.record, args=(report,))
    arrives.start()
    try:
        response = ps(api, machine)
    finally:
        arrives.join()
    assert response.status_code == 200 and response.json()[0]["command"] == "sh"


def test_a_report_naming_another_hosts_machine_is_refused_whole(
    api: Api, machine: dict[str, Any]
) -> None:
    refused = send(api, "sin-1", report_body(machine, [process(10, "sh")]))
    assert refused.status_code == 404 and machine["id"] in refused.json()["error"]
    unknown = report_body({"id": "nosuchmachine", "instance_id": "x"}, [])
    assert send(api, "ams-1", unknown).status_code == 404
    assert ps(api, machine).status_code == 503  # nothing was kept


def test_a_report_over_the_limits_is_400(api: Api, machine: dict[str, Any]) -> None:
    too_many = [process(p, "sh") for p in range(MAX_PROCESSES + 1)]
    assert send(api, "ams-1", report_body(machine, too_many)).status_code == 400
    too_long = [process(10, "x" * 5000)]
    assert send(api, "ams-1", report_body(machine, too_long)).status_code == 400
    assert ps(api, machine).status_code == 503
