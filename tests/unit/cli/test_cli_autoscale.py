"""`ferry autoscale status`, and the autoscale/fallback parts of `ferry deploy` and `scale`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.cli_fakes import REGISTRY, FakeApi, RecordingTools, invoke

STATUS = {
    "policy": {
        "enabled": True,
        "regions": ["ams", "sin"],
        "min_per_region": 1,
        "max_per_region": 3,
        "max_total": 10,
        "target_concurrency": None,
        "scale_out_after": 30.0,
        "scale_in_after": 300.0,
        "stop_idle_after": 300.0,
        "destroy_after": 600.0,
    },
    "enabled": True,
    "target_concurrency": 5,
    "placement_basis": "by round-trip time",
    "last_reason": "3 actions",
    "regions": {
        "ams": {
            "started": 1,
            "stopped": 0,
            "desired": 1,
            "rate": 2.0,
            "concurrency": 0.5,
            "unserved_rate": 0.0,
        },
        "sin": {
            "started": 3,
            "stopped": 1,
            "desired": 3,
            "rate": 96.8,
            "concurrency": 14.2,
            "unserved_rate": 1.5,
        },
    },
    "decisions": [
        {
            "at": "2026-11-26T10:00:00+00:00",
            "kind": "create",
            "rule": "scale-out",
            "region": "sin",
            "machine_id": None,
            "reason": "sin: concurrency 14.2 / target 5 needs 3 machines, 1 running, for 31s "
            "(>= scale_out_after 30s): create",
            "result": "created abc; placed in iad: no host in region sin has room",
        },
    ],
}

FLY_TOML = f"""
app = "web"
primary_region = "ams"

[build]
  image = "{REGISTRY}/web:v1"

[autoscale]
  regions = ["ams", "sin"]
  scale_out_after = "45s"
"""


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.add_app("web")
    fake.autoscale_status = STATUS
    return fake


def test_status_shows_policy_regions_and_decisions_with_reasons(api: FakeApi) -> None:
    result = invoke(api, ["autoscale", "status", "-a", "web"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "on; regions ams, sin; 1-3 per region, at most 10; scale out after 30s" in out
    assert "5 concurrent requests per machine (service soft_limit)" in out
    assert "by round-trip time" in out
    sin_row = next(line for line in out.splitlines() if line.startswith("sin "))
    assert sin_row.split() == ["sin", "3", "1", "3", "96.8", "14.2", "1.5"]
    assert "for 31s (>= scale_out_after 30s): create" in out
    assert "placed in iad: no host in region sin has room" in out


def test_status_json_is_the_api_answer(api: FakeApi) -> None:
    result = invoke(api, ["autoscale", "status", "-a", "web", "--json"])

    assert json.loads(result.stdout)["regions"]["sin"]["desired"] == 3


def test_status_without_a_policy_says_what_still_acts(api: FakeApi) -> None:
    api.autoscale_status = {"policy": None, "regions": {}, "decisions": []}
    result = invoke(api, ["autoscale", "status", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert "only idle autostop of auto_stop_machines acts" in result.stdout
    assert "No decisions yet." in result.stdout


def test_status_of_an_unknown_app_is_an_error_without_traceback(api: FakeApi) -> None:
    result = invoke(api, ["autoscale", "status", "-a", "ghost"])

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: app 'ghost' not found")


def test_deploy_sends_the_autoscale_section_and_fallback_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fly.toml").write_text(FLY_TOML)
    monkeypatch.chdir(tmp_path)
    api = FakeApi()
    api.placement_note = "placed in iad: no host in region ams has room for 1 cpu / 256 MB"

    result = invoke(api, ["deploy"], RecordingTools())

    assert result.exit_code == 0, result.output
    assert api.autoscale["web"]["regions"] == ["ams", "sin"]
    assert api.autoscale["web"]["scale_out_after"] == 45.0
    assert "Autoscale policy from [autoscale] sent (on)" in result.stdout
    assert "placed in iad: no host in region ams has room" in result.stdout
    created = [
        body
        for method, path, body in api.requests
        if method == "POST" and path == "/v1/apps/web/machines"
    ]
    assert created[0]["region_fallback"] is True


def test_deploy_without_the_section_removes_a_stale_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fly.toml").write_text(FLY_TOML.split("[autoscale]")[0])
    monkeypatch.chdir(tmp_path)
    api = FakeApi()
    api.add_app("web")
    api.autoscale["web"] = {"regions": ["ams"]}

    result = invoke(api, ["deploy"], RecordingTools())

    assert result.exit_code == 0, result.output
    assert "web" not in api.autoscale
    assert "Autoscale policy removed" in result.stdout


def test_scale_count_prints_the_placement_note(api: FakeApi) -> None:
    api.add_machine("aaa111", "ams")
    api.placement_note = "placed in iad: no host in region ams has room for 1 cpu / 256 MB"

    result = invoke(api, ["scale", "count", "2", "--region", "ams", "-a", "web"])

    assert result.exit_code == 0, result.output
    assert "placed in iad: no host in region ams has room" in result.stdout
