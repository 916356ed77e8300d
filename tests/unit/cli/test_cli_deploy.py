from __future__ import annotations

import json
from pathlib import Path

import pytest

from ferry.cli.logs import new_log_lines
from ferry.cli.machines.run import build_machine_config
from ferry.errors import ValidationError
from tests.unit.cli.cli_fakes import DIGEST, REGISTRY, FakeApi, RecordingTools, invoke

FLY_TOML = """
app = "web"
primary_region = "ams"

[build]
  image = "{registry}/web:v1"

[env]
  GREETING = "hi"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_first_deploy_creates_the_app_and_a_machine_in_the_primary_region(project: Path) -> None:
    api, tools = FakeApi(), RecordingTools()
    result = invoke(api, ["deploy"], tools)
    assert result.exit_code == 0, result.output
    assert "App web did not exist: created it" in result.stdout
    (machine,) = api.machines.values()
    assert machine["region"] == "ams"
    assert machine["config"]["image"] == f"{REGISTRY}/web@{DIGEST}"
    assert machine["config"]["env"]["GREETING"] == "hi"
    assert tools.commands[0][:2] == ["skopeo", "inspect"]
    assert "Deployed web" in result.stdout


def test_deploy_updates_existing_machines_and_adds_requested_regions(project: Path) -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("aaa111", "ams")
    api.add_machine("sss111", "sin")
    result = invoke(api, ["deploy", "--regions", "ams,iad"])
    assert result.exit_code == 0, result.output
    assert api.machines["aaa111"]["config"]["image"].endswith(DIGEST)
    assert not api.machines["sss111"]["config"]["image"].endswith(DIGEST)  # sin not listed
    assert [m["region"] for m in api.machines.values()].count("iad") == 1
    assert "Updating aaa111 (ams)" in result.stdout and "Creating a machine in iad" in result.stdout


def test_unknown_region_is_refused_before_any_build(project: Path) -> None:
    api, tools = FakeApi(), RecordingTools()
    result = invoke(api, ["deploy", "--regions", "ams,xyz"], tools)
    assert result.exit_code == 1
    assert "Error: unknown region 'xyz'; known regions: ams, iad, sin" in result.stderr
    assert tools.commands == [] and api.machines == {}


def test_deploy_without_any_image_names_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fly.toml").write_text('app = "web"\n')
    monkeypatch.chdir(tmp_path)
    result = invoke(FakeApi(), ["deploy"])
    assert result.exit_code == 1
    assert "Error: no image to deploy" in result.stderr and "[build] dockerfile" in result.stderr


def test_deploy_builds_a_dockerfile_next_to_fly_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fly.toml").write_text('app = "web"\n[build]\n  dockerfile = "Dockerfile"\n')
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    tools = RecordingTools()
    result = invoke(FakeApi(), ["deploy", "--strategy", "immediate"], tools)
    assert result.exit_code == 0, result.output
    assert [c[:2] for c in tools.commands] == [
        ["buildah", "bud"],
        ["buildah", "push"],
        ["buildah", "rmi"],
    ]
    assert tools.commands[0][-1] == str(tmp_path)


def test_bad_strategy_and_wait_timeout_are_refused(project: Path) -> None:
    bad = invoke(FakeApi(), ["deploy", "--strategy", "blue-green"])
    assert bad.exit_code == 1 and "unknown --strategy 'blue-green'" in bad.stderr
    slow = invoke(FakeApi(), ["deploy", "--wait-timeout", "soon"])
    assert slow.exit_code == 1 and "invalid duration 'soon'" in slow.stderr


def test_scale_count_clones_and_destroys(project: Path) -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("aaa111", "ams")
    up = invoke(api, ["scale", "count", "3"])
    assert up.exit_code == 0, up.output
    ams = [m for m in api.machines.values() if m["region"] == "ams"]
    assert len(ams) == 3 and all(m["config"]["env"] == {"A": "1"} for m in ams)
    down = invoke(api, ["scale", "count", "1", "--region", "ams", "--yes"])
    assert down.exit_code == 0 and len(api.machines) == 1


def test_scale_without_machines_says_deploy_first() -> None:
    api = FakeApi()
    api.add_app("web")
    result = invoke(api, ["scale", "count", "2", "-a", "web", "--region", "ams"])
    assert result.exit_code == 1 and "deploy first" in result.stderr


def test_machine_run_pins_the_image_and_sends_flags(api_with_app: FakeApi) -> None:
    result = invoke(
        api_with_app,
        [
            "machine",
            "run",
            f"{REGISTRY}/web:v2",
            "sleep",
            "60",
            "-a",
            "web",
            "-e",
            "K=V",
            "--region",
            "sin",
            "--vm-memory",
            "512",
            "--port",
            "8080",
            "--restart",
            "no",
        ],
    )
    assert result.exit_code == 0, result.output
    body = next(b for m, p, b in api_with_app.requests if m == "POST" and p.endswith("/machines"))
    assert body["region"] == "sin"
    config = body["config"]
    assert config["image"] == f"{REGISTRY}/web@{DIGEST}"
    assert config["init"]["cmd"] == ["sleep", "60"] and config["env"] == {"K": "V"}
    assert config["guest"]["memory_mb"] == 512 and config["restart"]["policy"] == "no"
    assert config["services"][0]["internal_port"] == 8080


def test_machine_run_rejects_bad_flags_clearly(api_with_app: FakeApi) -> None:
    bad_env = invoke(api_with_app, ["machine", "run", "img", "-a", "web", "-e", "NOVALUE"])
    assert bad_env.exit_code == 1 and "invalid --env 'NOVALUE'" in bad_env.stderr
    with pytest.raises(ValidationError, match=r"memory_mb: Input should be greater"):
        build_machine_config(
            "img", [], env={}, size=None, memory_mb=1, cpus=None, restart=None, port=None
        )


@pytest.fixture
def api_with_app() -> FakeApi:
    api = FakeApi()
    api.add_app("web")
    return api


def test_new_log_lines_follow_a_sliding_window() -> None:
    assert new_log_lines([], ["a", "b"]) == ["a", "b"]
    assert new_log_lines(["a", "b"], ["a", "b", "c"]) == ["c"]
    assert new_log_lines(["a", "b", "c"], ["b", "c", "d", "e"]) == ["d", "e"]
    assert new_log_lines(["a", "b"], ["a", "b"]) == []
    assert new_log_lines(["x"], ["y"]) == ["y"]


def test_deploy_json_free_summary_lists_machines(project: Path) -> None:
    api = FakeApi()
    result = invoke(api, ["deploy"])
    (machine_id,) = api.machines
    assert machine_id in result.stdout and "sha256:cdcdcdcdcdcd" in result.stdout
    assert json.loads(invoke(api, ["machine", "list", "--json"]).stdout)[0]["id"] == machine_id
