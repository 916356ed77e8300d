"""`ferry deploy` honours `[deploy] max_unavailable` and `--max-unavailable`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.cli_fakes import REGISTRY, FakeApi, RecordingTools, invoke

FLY_TOML = """
app = "web"
primary_region = "ams"

[build]
  image = "{registry}/web:v1"
{deploy}
"""


def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deploy: str = "") -> None:
    (tmp_path / "fly.toml").write_text(FLY_TOML.format(registry=REGISTRY, deploy=deploy))
    monkeypatch.chdir(tmp_path)


def three_regions() -> FakeApi:
    api = FakeApi()
    api.add_app("web")
    for machine_id, region in (("aaa111", "ams"), ("sss111", "sin"), ("iii111", "iad")):
        api.add_machine(machine_id, region)
    return api


def machine_calls(api: FakeApi) -> list[tuple[str, str]]:
    """("update", id) and ("wait", id) in the order the deploy sent them."""
    calls = []
    for method, path, _ in api.requests:
        parts = path.split("/")
        if method == "POST" and len(parts) == 6 and parts[4] == "machines":
            calls.append(("update", parts[5]))
        elif parts[-1] == "wait":
            calls.append(("wait", parts[5]))
    return calls


def test_fly_toml_max_unavailable_replaces_that_many_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, monkeypatch, "[deploy]\n  max_unavailable = 2\n")
    api = three_regions()
    result = invoke(api, ["deploy", "--regions", "ams,sin,iad"])
    assert result.exit_code == 0, result.output
    assert "(rolling, up to 2 at a time, 3 to update, 0 to create)" in result.stdout
    assert machine_calls(api) == [
        ("update", "aaa111"),
        ("update", "sss111"),
        ("wait", "aaa111"),
        ("wait", "sss111"),
        ("update", "iii111"),
        ("wait", "iii111"),
    ]


def test_max_unavailable_flag_overrides_fly_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, monkeypatch, "[deploy]\n  max_unavailable = 1\n")
    api = three_regions()
    result = invoke(api, ["deploy", "--regions", "ams,sin,iad", "--max-unavailable", "3"])
    assert result.exit_code == 0, result.output
    assert "rolling, up to 3 at a time" in result.stdout
    assert [verb for verb, _ in machine_calls(api)] == ["update"] * 3 + ["wait"] * 3


def test_default_fraction_of_few_machines_is_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, monkeypatch)
    api = three_regions()
    result = invoke(api, ["deploy", "--regions", "ams,sin,iad"])
    assert result.exit_code == 0, result.output
    assert "rolling, one at a time" in result.stdout  # 0.33 of 3 rounds down to 1


@pytest.mark.parametrize("flag", ["2.5", "0", "many"])
def test_bad_max_unavailable_flag_is_refused_before_any_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    project(tmp_path, monkeypatch)
    api, tools = three_regions(), RecordingTools()
    result = invoke(api, ["deploy", "--max-unavailable", flag], tools)
    assert result.exit_code == 1
    assert "Error: --max-unavailable must be" in result.stderr
    assert tools.commands == []
