"""`ferry volumes …` against the real API (TestClient transport); the host's agent is
played by reports to the host routes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

from ..server.conftest import TOKEN, Api, FakeClock, open_api

GIB = 1024**3


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from open_api(tmp_path / "state.db", FakeClock())


def run(api: Api, *args: str, stdin: str | None = None) -> Result:
    def client() -> FerryClient:
        return FerryClient("http://testserver", TOKEN, transport=api.client._transport)

    state = CliState(client_factory=client)
    return CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "200"}, input=stdin)


def agent_reports(api: Api, **report: Any) -> None:
    response = api.client.post("/v1/hosts/ams-1/volumes/report", json=report)
    assert response.status_code == 204, response.text


def test_create_list_show_extend_destroy(api: Api) -> None:
    api.register_host()
    api.create_app("web")
    agent_reports(api, capacity_bytes=10 * GIB)

    made = run(api, "volumes", "create", "data", "-r", "ams", "-s", "2", "-a", "web", "--json")
    assert made.exit_code == 0, made.output
    volume = json.loads(made.stdout)
    agent_reports(api, volumes=[{"id": volume["id"], "state": "ready", "size_gb": 2}])
    listed = run(api, "volumes", "list", "-a", "web")
    assert volume["id"] in listed.output and "created" in listed.output and "2GB" in listed.output
    shown = run(api, "volumes", "show", volume["id"], "-a", "web")
    assert "Zone (host)" in shown.output and "ams-1" in shown.output
    extended = run(api, "volumes", "extend", volume["id"], "-s", "3", "-a", "web")
    assert extended.exit_code == 0 and "extended to 3 GB" in extended.output
    kept = run(api, "volumes", "destroy", volume["id"], "-a", "web", stdin="n\n")
    assert kept.exit_code == 1
    gone = run(api, "volumes", "destroy", volume["id"], "-a", "web", "--yes")
    assert gone.exit_code == 0 and f"Destroyed volume {volume['id']}" in gone.output


def test_refusals_are_one_sentence_and_snapshots_list(api: Api) -> None:
    api.register_host()
    api.create_app("web")
    agent_reports(api, capacity_bytes=10 * GIB)

    small = run(api, "volumes", "create", "data", "-r", "ams", "-s", "0", "-a", "web")
    big = run(api, "volumes", "create", "data", "-r", "ams", "-s", "50", "-a", "web")
    made = json.loads(run(api, "volumes", "create", "data", "-a", "web", "--json").stdout)
    agent_reports(api, volumes=[{"id": made["id"], "state": "ready", "size_gb": 1}])
    snap = run(api, "volumes", "snapshots", "create", made["id"], "-a", "web")
    listed = run(api, "volumes", "snapshots", "list", made["id"], "-a", "web")

    assert small.exit_code == 1 and "at least 1 GB" in small.output
    assert big.exit_code == 1 and "no host in region ams has room" in big.output
    assert "Traceback" not in small.output + big.output
    assert snap.exit_code == 0 and "is being made" in snap.output
    assert "creating" in listed.output


def test_fork_asks_for_a_copy_of_the_volume_in_the_other_region(api: Api) -> None:
    api.register_host()
    api.register_host("iad-1", "iad", subnet="10.2.0.0/24")
    api.create_app("web")
    agent_reports(api, capacity_bytes=10 * GIB)
    response = api.client.post("/v1/hosts/iad-1/volumes/report", json={"capacity_bytes": 10 * GIB})
    assert response.status_code == 204
    made = json.loads(run(api, "volumes", "create", "data", "-r", "ams", "-a", "web", "-j").stdout)
    agent_reports(api, volumes=[{"id": made["id"], "state": "ready", "size_gb": 1}])

    forked = run(api, "volumes", "fork", made["id"], "-r", "iad", "-a", "web", "--json")

    assert forked.exit_code == 0, forked.output
    copy = json.loads(forked.stdout)
    assert (copy["region"], copy["state"], copy["source_volume_id"]) == (
        "iad",
        "hydrating",
        made["id"],
    )
    # The source's host is asked for a snapshot; once made, it is to send it.
    kept = api.client.get("/v1/hosts/ams-1/volumes").json()
    (snapshot,) = kept["snapshots"]
    agent_reports(api, snapshots=[{"id": snapshot["id"], "status": "created", "size": 1}])
    assert api.client.get("/v1/hosts/ams-1/volumes").json()["exports"] == [snapshot["id"]]
