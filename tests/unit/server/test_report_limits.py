"""Log uploads and edge traffic reports: bounded, known machines and regions only.

Each refusal is a 4xx that says what was wrong, and nothing of it is kept.
"""

from __future__ import annotations

from typing import Any

import pytest

from ferry.server.schemas import MAX_LOG_LINE_CHARS, MAX_LOG_LINES_PER_UPLOAD
from ferry.server.traffic import MAX_REPORT_APPS, MAX_REPORT_MACHINES

from .conftest import Api


@pytest.fixture
def web(api: Api) -> tuple[Api, dict[str, Any], dict[str, Any]]:
    """Hosts in ams and sin, app ``web`` with one machine on each."""
    api.register_host("ams-1", "ams", subnet="10.1.0.0/24")
    api.register_host("sin-1", "sin", subnet="10.2.0.0/24")
    api.create_app("web")
    return api, api.create_machine(region="ams"), api.create_machine(region="sin")


def upload(api: Api, host: str, machine_id: str, lines: list[str]) -> Any:
    return api.client.post(f"/v1/hosts/{host}/machines/{machine_id}/logs", json={"lines": lines})


def logs(api: Api, machine_id: str) -> list[str]:
    lines: list[str] = api.client.get(f"/v1/apps/web/machines/{machine_id}/logs").json()["lines"]
    return lines


def test_a_log_upload_within_the_limits_is_kept(web: tuple[Api, Any, Any]) -> None:
    api, ams, _ = web
    lines = ["x" * MAX_LOG_LINE_CHARS] + [str(i) for i in range(MAX_LOG_LINES_PER_UPLOAD - 1)]
    assert upload(api, "ams-1", ams["id"], lines).status_code == 200
    assert logs(api, ams["id"])[-1] == str(MAX_LOG_LINES_PER_UPLOAD - 2)


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        (["a"] * (MAX_LOG_LINES_PER_UPLOAD + 1), "at most 1000 items"),
        (["ok", "y" * (MAX_LOG_LINE_CHARS + 1)], "at most 16384 characters"),
    ],
)
def test_a_log_upload_over_a_limit_is_400_and_nothing_is_kept(
    web: tuple[Api, Any, Any], lines: list[str], said: str
) -> None:
    api, ams, _ = web
    response = upload(api, "ams-1", ams["id"], lines)
    assert response.status_code == 400
    assert said in response.json()["error"]
    assert logs(api, ams["id"]) == []


def test_logs_of_another_hosts_machine_or_an_unknown_one_are_404(
    web: tuple[Api, Any, Any],
) -> None:
    api, ams, sin = web
    other_host = upload(api, "ams-1", sin["id"], ["sneaky"])
    assert other_host.status_code == 404
    assert other_host.json()["error"] == f"machine {sin['id']!r} is not assigned to host 'ams-1'"
    assert upload(api, "ams-1", "ghost", ["boo"]).status_code == 404
    assert upload(api, "nohost", ams["id"], ["boo"]).status_code == 404
    assert logs(api, sin["id"]) == [] and logs(api, ams["id"]) == []


def report(api: Api, region: str, apps: dict[str, Any]) -> Any:
    return api.client.post(f"/v1/edges/{region}/traffic", json={"window_seconds": 10, "apps": apps})


def traffic(api: Api) -> dict[str, Any]:
    edges: dict[str, Any] = api.client.get("/v1/apps/web/traffic").json()["edges"]
    return edges


def test_a_report_of_known_machines_from_a_known_region_is_kept(
    web: tuple[Api, Any, Any],
) -> None:
    api, ams, sin = web
    machines = {m["id"]: {"in_flight": 1, "requests_total": 5} for m in (ams, sin)}
    assert report(api, "ams", {"web": {"in_flight": 2, "machines": machines}}).status_code == 200
    assert traffic(api)["ams"]["in_flight"] == 2


def test_a_report_from_an_unknown_region_is_404(web: tuple[Api, Any, Any]) -> None:
    api, _, _ = web
    response = report(api, "xyz", {"web": {}})
    assert response.status_code == 404
    assert response.json()["error"] == "unknown region 'xyz'; known regions: ams, sin"
    assert traffic(api) == {}


def test_a_report_naming_unknown_apps_or_machines_is_400_and_nothing_is_kept(
    web: tuple[Api, Any, Any],
) -> None:
    api, ams, _ = web
    apps = {
        "web": {"machines": {ams["id"]: {}, "m-ghost": {}}},
        "nosuch": {"in_flight": 1},
    }
    response = report(api, "ams", apps)
    assert response.status_code == 400
    assert response.json()["error"] == (
        "traffic report from ams refused: unknown apps: 'nosuch'; "
        "unknown machines: 'm-ghost (app web)'"
    )
    assert traffic(api) == {}


def test_a_report_over_its_limits_is_400(web: tuple[Api, Any, Any]) -> None:
    api, _, _ = web
    too_many_apps = {f"app{i}": {} for i in range(MAX_REPORT_APPS + 1)}
    response = report(api, "ams", too_many_apps)
    assert response.status_code == 400 and "at most 1000 items" in response.json()["error"]
    machines = {f"m{i}": {} for i in range(MAX_REPORT_MACHINES + 1)}
    response = report(api, "ams", {"web": {"machines": machines}})
    assert response.status_code == 400
    assert "names 10001 machines; at most 10000 are taken" in response.json()["error"]
    statuses = {f"{i}xx": 1 for i in range(1, 10)}
    assert report(api, "ams", {"web": {"requests": statuses}}).status_code == 400
    assert traffic(api) == {}
