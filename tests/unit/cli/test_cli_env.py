"""The CLI's environment as flyctl reads it: FERRY_/FLY_API_TOKEN and FLY_APP."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient, default_token
from tests.unit.cli.cli_fakes import FakeApi


@pytest.fixture(autouse=True)
def no_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_HOME", str(tmp_path))  # no admin-token file there
    for name in ("FERRY_API_TOKEN", "FLY_API_TOKEN", "FLY_APP"):
        monkeypatch.delenv(name, raising=False)


def test_ferry_token_wins_over_fly_token(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_token() is None
    monkeypatch.setenv("FLY_API_TOKEN", " fly-token\n")
    assert default_token() == "fly-token"
    monkeypatch.setenv("FERRY_API_TOKEN", "ferry-token")
    assert default_token() == "ferry-token"
    monkeypatch.setenv("FERRY_API_TOKEN", "  ")  # blank counts as unset
    assert default_token() == "fly-token"


def test_the_client_sends_the_fly_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_API_TOKEN", "fly-token")
    api = FakeApi()
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return api.handle(request)

    with FerryClient("http://ferry.test", transport=httpx.MockTransport(handle)) as client:
        client.list_apps()
    assert seen == ["Bearer fly-token"]


def _run(api: FakeApi, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    state = CliState(client_factory=api.client)
    result = CliRunner().invoke(cli_app, args, obj=state, env={"COLUMNS": "200", **env})
    return result.exit_code, result.output


def _first_app_path(api: FakeApi) -> str:
    return next(p for _, p, _ in api.requests if p.startswith("/v1/apps/"))


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.add_app("web")
    fake.add_app("other")
    fake.add_machine("aaa111")
    return fake


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["logs", "--no-tail"],
        ["machine", "list"],
        ["machine", "status", "aaa111"],
        ["scale", "vm", "shared-cpu-1x"],
        ["autoscale", "status"],
        ["config", "show"],
    ],
)
def test_fly_app_names_the_app_of_every_command(api: FakeApi, args: list[str]) -> None:
    code, out = _run(api, args, {"FLY_APP": "web"})
    assert code == 0, out
    assert any("/v1/apps/web" in path for _, path, _ in api.requests)


def test_app_flag_wins_over_fly_app(api: FakeApi, tmp_path: Path) -> None:
    code, out = _run(api, ["status", "-a", "other"], {"FLY_APP": "web"})
    assert code == 0, out
    assert _first_app_path(api) == "/v1/apps/other"


def test_fly_app_wins_over_fly_toml(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fly.toml").write_text('app = "other"\n')
    monkeypatch.chdir(tmp_path)
    code, out = _run(api, ["status"], {"FLY_APP": "web"})
    assert code == 0, out
    assert _first_app_path(api) == "/v1/apps/web"
