"""`ferry certs …` against the real API (TestClient transport)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient
from ferry.server.certs_service import CertSettings

from ..server.conftest import TOKEN, Api, FakeClock, open_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = CertSettings(
        cluster_domain="ferry.test",
        edge_addresses=("10.9.250.1",),
        resolve=lambda name: ["198.51.100.7"],
    )
    yield from open_api(tmp_path / "state.db", FakeClock(), cert_settings=settings)


def run(api: Api, *args: str) -> Result:
    def client() -> FerryClient:
        return FerryClient("http://testserver", TOKEN, transport=api.client._transport)

    state = CliState(client_factory=client)
    return CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "200"})


def test_add_list_show_check_remove(api: Api) -> None:
    api.create_app("web")
    added = run(api, "certs", "add", "www.example.com", "-a", "web")
    assert added.exit_code == 0, added.output
    assert "Point an A record for www.example.com at 10.9.250.1" in added.output
    listed = run(api, "certs", "list", "-a", "web")
    assert "www.example.com" in listed.output and "Awaiting certificates" in listed.output
    as_json = json.loads(run(api, "certs", "list", "-a", "web", "--json").stdout)
    assert [c["hostname"] for c in as_json] == ["www.example.com"]
    shown = json.loads(run(api, "certs", "show", "www.example.com", "-a", "web", "--json").stdout)
    assert shown["client_status"] == "Awaiting certificates"
    checked = run(api, "certs", "check", "www.example.com", "-a", "web")
    assert checked.exit_code == 0, checked.output
    assert "resolves to 198.51.100.7, not to the cluster's edges (10.9.250.1)" in checked.output
    removed = run(api, "certs", "remove", "www.example.com", "-a", "web")
    assert removed.exit_code == 0 and "Removed www.example.com from web" in removed.output
    assert "has no custom host names" in run(api, "certs", "list", "-a", "web").output


def test_refusals_are_one_line_with_a_hint(api: Api) -> None:
    api.create_app("web")
    bad = run(api, "certs", "add", "web.ferry.test", "-a", "web")
    assert bad.exit_code == 1
    assert "cluster's own domain" in bad.output
    missing = run(api, "certs", "show", "nope.example.com", "-a", "web")
    assert missing.exit_code == 1 and "has no certificate for nope.example.com" in missing.output
