"""`ferry secrets …` against the real API (TestClient transport): values never printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

from ..server.conftest import TOKEN, Api, FakeClock, open_api

VALUE = "s3cr3t-cli-value"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path / "state.db", FakeClock())


def run(api: Api, *args: str, input: str | None = None) -> Result:
    def client() -> FerryClient:
        return FerryClient("http://testserver", TOKEN, transport=api.client._transport)

    state = CliState(client_factory=client)
    return CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "200"}, input=input)


def test_set_list_unset_and_deploy_never_print_a_value(api: Api) -> None:
    api.create_app("web")
    staged = run(api, "secrets", "set", f"API_KEY={VALUE}", "OTHER=x", "--stage", "-a", "web")
    assert staged.exit_code == 0, staged.output
    assert "staged" in staged.output and VALUE not in staged.output
    listed = run(api, "secrets", "list", "-a", "web")
    assert listed.exit_code == 0, listed.output
    assert "API_KEY" in listed.output and "Staged" in listed.output and VALUE not in listed.output
    as_json = json.loads(run(api, "secrets", "list", "-a", "web", "--json").stdout)
    assert [s["name"] for s in as_json["secrets"]] == ["API_KEY", "OTHER"]
    assert VALUE not in json.dumps(as_json)
    deployed = run(api, "secrets", "deploy", "-a", "web")
    assert deployed.exit_code == 0, deployed.output
    assert "0 machine(s) of web run with the new secrets" in deployed.output
    assert "Deployed" in run(api, "secrets", "list", "-a", "web").output
    unset = run(api, "secrets", "unset", "OTHER", "-a", "web")
    assert unset.exit_code == 0, unset.output
    assert "OTHER" not in run(api, "secrets", "list", "-a", "web").output


def test_import_reads_stdin_with_multi_line_values(api: Api) -> None:
    api.create_app("web")
    text = f'A={VALUE}\n# comment\nPEM="""line one\nline two"""\n'
    result = run(api, "secrets", "import", "-a", "web", input=text)
    assert result.exit_code == 0, result.output
    assert VALUE not in result.output
    names = [s["name"] for s in api.client.get("/v1/apps/web/secrets").json()["secrets"]]
    assert names == ["A", "PEM"]


def test_bad_input_fails_naming_the_problem_never_the_value(api: Api) -> None:
    api.create_app("web")
    for args in (
        ["secrets", "set", f"BAD-NAME={VALUE}", "-a", "web"],
        ["secrets", "set", VALUE, "-a", "web"],
        ["secrets", "set", "BIG=" + VALUE * 5000, "-a", "web"],
    ):
        result = run(api, *args)
        assert result.exit_code == 1, result.output
        assert VALUE not in result.output
    assert "BAD-NAME" in run(api, "secrets", "set", f"BAD-NAME={VALUE}", "-a", "web").output
    nothing = run(api, "secrets", "deploy", "-a", "web")
    assert nothing.exit_code == 1 and "no staged secrets" in nothing.output
    assert api.client.get("/v1/apps/web/secrets").json()["secrets"] == []
