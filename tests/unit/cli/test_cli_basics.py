from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.cli_fakes import FakeApi, invoke


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.add_app("web")
    fake.add_machine("aaa111", "ams", checks=[{"name": "http", "status": "passing"}])
    fake.add_machine("bbb222", "sin", state="stopped")
    return fake


def test_apps_list_json_is_the_api_objects(api: FakeApi) -> None:
    result = invoke(api, ["apps", "list", "--json"])
    assert result.exit_code == 0
    assert [a["name"] for a in json.loads(result.stdout)] == ["web"]


def test_apps_create_then_duplicate_shows_error_and_hint_without_traceback(api: FakeApi) -> None:
    created = invoke(api, ["apps", "create", "shop"])
    assert created.exit_code == 0 and "New app created: shop" in created.stdout
    duplicate = invoke(api, ["apps", "create", "shop"])
    assert duplicate.exit_code == 1
    assert duplicate.stderr.splitlines() == [
        "Error: app 'shop' already exists",
        "choose another name",
    ]
    assert "Traceback" not in duplicate.output


def test_apps_destroy_asks_unless_yes(api: FakeApi) -> None:
    refused = invoke(api, ["apps", "destroy", "web"], input="n\n")
    assert refused.exit_code == 1 and "web" in api.apps
    done = invoke(api, ["apps", "destroy", "web", "--yes"])
    assert done.exit_code == 0 and "web" not in api.apps


def test_regions_list(api: FakeApi) -> None:
    result = invoke(api, ["regions", "list", "--json"])
    assert [r["code"] for r in json.loads(result.stdout)] == ["ams", "iad", "sin"]
    assert "iad" in invoke(api, ["regions", "list"]).stdout


def test_status_with_app_flag_shows_every_machine(api: FakeApi) -> None:
    result = invoke(api, ["status", "-a", "web"])
    assert result.exit_code == 0, result.output
    for expected in (
        "aaa111",
        "bbb222",
        "ams",
        "sin",
        "1/1 passing",
        "stopped",
        "fdaa:0:1:0:1:0:1:2",
    ):
        assert expected in result.stdout


def test_status_shows_traffic_per_edge_region(api: FakeApi) -> None:
    api.traffic = {
        "iad": {"requests": {"2xx": 40, "5xx": 2}, "bytes_in": 2048, "bytes_out": 4096,
                "p50_ms": 1.5, "p99_ms": 9.0, "window_seconds": 30},
    }  # fmt: skip
    result = invoke(api, ["status", "-a", "web"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("iad "))
    assert row.split()[:5] == ["iad", "42", "40", "0", "2"]
    assert "1.5ms" in row and "9ms" in row


def test_status_json_parses(api: FakeApi) -> None:
    data = json.loads(invoke(api, ["status", "-a", "web", "--json"]).stdout)
    assert data["app"]["name"] == "web"
    assert {m["id"] for m in data["machines"]} == {"aaa111", "bbb222"}


def test_app_comes_from_fly_toml_when_no_flag(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.add_app("other")
    (tmp_path / "fly.toml").write_text('app = "other"\n')
    monkeypatch.chdir(tmp_path)
    assert json.loads(invoke(api, ["status", "--json"]).stdout)["app"]["name"] == "other"
    # -a wins over fly.toml
    assert json.loads(invoke(api, ["status", "--json", "-a", "web"]).stdout)["app"]["name"] == "web"


def test_no_app_and_no_fly_toml_is_a_clear_error(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(api, ["machine", "list"])
    assert result.exit_code == 1
    assert "Error: no app given and no fly.toml in this directory" in result.stderr
    assert "pass -a APP" in result.stderr


def test_unknown_app_error_comes_from_the_api(api: FakeApi) -> None:
    result = invoke(api, ["status", "-a", "nope"])
    assert result.exit_code == 1 and "Error: app 'nope' not found" in result.stderr


def test_unreachable_api_names_the_url_and_hints_at_cluster_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from ferry.cli.main import app

    monkeypatch.setenv("FERRY_API_URL", "http://127.0.0.1:1")
    result = CliRunner().invoke(app, ["apps", "list"])
    assert result.exit_code == 1
    assert "Error: cannot reach the Ferry API at http://127.0.0.1:1" in result.stderr
    assert "ferry cluster status" in result.stderr


def test_ferry_debug_shows_the_real_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ferry.cli.main import app
    from ferry.errors import UnavailableError

    monkeypatch.setenv("FERRY_API_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("FERRY_DEBUG", "1")
    result = CliRunner().invoke(app, ["apps", "list"])
    assert isinstance(result.exception, UnavailableError)


def test_auth_token_prints_the_token_or_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: FakeApi
) -> None:
    monkeypatch.setenv("FERRY_HOME", str(tmp_path))
    missing = invoke(api, ["auth", "token"])
    assert missing.exit_code == 1 and "has not been started" in missing.stderr
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "admin-token").write_text("s3cret\n")
    assert invoke(api, ["auth", "token"]).stdout == "s3cret\n"


def test_machine_list_json_and_alias(api: FakeApi) -> None:
    result = invoke(api, ["machines", "list", "-a", "web", "--json"])
    assert result.exit_code == 0
    assert {m["id"] for m in json.loads(result.stdout)} == {"aaa111", "bbb222"}


def test_machine_status_and_lifecycle_verbs(api: FakeApi) -> None:
    status = invoke(api, ["machine", "status", "aaa111", "-a", "web"])
    assert status.exit_code == 0 and "started (desired started)" in status.stdout
    assert (
        invoke(api, ["machine", "stop", "aaa111", "-a", "web", "--signal", "SIGTERM"]).exit_code
        == 0
    )
    assert ("POST", "/v1/apps/web/machines/aaa111/stop", {"signal": "SIGTERM"}) in api.requests
    assert invoke(api, ["machine", "destroy", "bbb222", "-a", "web", "--force"]).exit_code == 0
    assert "bbb222" not in api.machines
    missing = invoke(api, ["machine", "start", "zzz", "-a", "web"])
    assert missing.exit_code == 1 and "machine zzz not found in app web" in missing.stderr


def test_logs_no_tail_prints_lines_with_machine_and_region(api: FakeApi) -> None:
    api.logs["aaa111"] = ["hello", "world"]
    result = invoke(api, ["logs", "-a", "web", "--no-tail"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["ams [aaa111] hello", "ams [aaa111] world"]
    only = invoke(api, ["logs", "-a", "web", "-i", "bbb222", "--no-tail"])
    assert only.stdout == ""
