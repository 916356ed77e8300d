"""`ferry deploy` and `ferry scale count` with several process groups, as a user runs them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.cli.cli_fakes import REGISTRY, FakeApi, RecordingTools, invoke

FLY_TOML = f"""
app = "web"
primary_region = "ams"
kill_timout = 5

[build]
  image = "{REGISTRY}/web:v1"

[processes]
  web = "bin/server"
  worker = "bin/worker"

[http_service]
  internal_port = 8080
  processes = ["web"]
"""


def config_of(group: str) -> dict[str, Any]:
    return {
        "image": f"{REGISTRY}/web@sha256:" + "0" * 64,
        "init": {"cmd": [f"bin/{group}"]},
        "metadata": {"fly_process_group": group},
    }


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "fly.toml").write_text(FLY_TOML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_deploy_creates_a_machine_per_group_and_warns_about_an_unknown_key(
    project: Path,
) -> None:
    api = FakeApi()

    result = invoke(api, ["deploy"], RecordingTools())

    assert result.exit_code == 0, result.output
    assert f'WARNING {project}/fly.toml:4: unknown key "kill_timout" ignored' in result.stderr
    assert '(did you mean "kill_timeout"?)' in result.stderr
    groups = {
        m["config"]["metadata"]["fly_process_group"]: m["config"] for m in api.machines.values()
    }
    assert sorted(groups) == ["web", "worker"]
    assert groups["web"]["init"]["cmd"] == ["bin/server"] and groups["web"]["services"]
    assert groups["worker"]["init"]["cmd"] == ["bin/worker"] and groups["worker"]["services"] == []


def test_deploy_of_a_refused_key_names_it_and_changes_nothing(project: Path) -> None:
    (project / "fly.toml").write_text(FLY_TOML + "  tls_options = { default_self_signed = true }\n")
    api = FakeApi()

    result = invoke(api, ["deploy"], RecordingTools())

    assert result.exit_code != 0
    expected = (
        f"{project}/fly.toml:16: [http_service] tls_options.default_self_signed = true "
        "is not supported by Ferry"
    )
    assert expected in result.stderr
    assert api.machines == {} and api.paths("POST") == []


def test_scale_count_per_group_copies_each_groups_own_config(project: Path) -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("web111", "ams", config=config_of("server"))
    api.machines["web111"]["config"]["metadata"]["fly_process_group"] = "web"
    api.add_machine("wrk111", "ams", config=config_of("worker"))
    api.add_machine("wrk222", "ams", config=config_of("worker"))

    result = invoke(api, ["scale", "count", "web=2", "worker=1", "--yes"])

    assert result.exit_code == 0, result.output
    groups = [m["config"]["metadata"]["fly_process_group"] for m in api.machines.values()]
    assert sorted(groups) == ["web", "web", "worker"]
    created = [m for mid, m in api.machines.items() if mid not in ("web111", "wrk111", "wrk222")]
    assert [m["config"]["init"]["cmd"] for m in created] == [["bin/server"]]
    assert "web now has 2 web machines in ams" in result.stdout
    assert "web now has 1 worker machines in ams" in result.stdout


def test_a_bare_count_with_several_groups_asks_which(project: Path) -> None:
    api = FakeApi()
    api.add_app("web")
    api.add_machine("wrk111", "ams", config=config_of("worker"))

    result = invoke(api, ["scale", "count", "3", "--yes"])

    assert result.exit_code != 0
    assert "the app has several process groups (web, worker); say how many of each" in result.stderr
    assert "ferry scale count web=3" in result.stderr
    assert list(api.machines) == ["wrk111"]
