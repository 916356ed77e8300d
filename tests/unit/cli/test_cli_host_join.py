"""`ferry host token create` and `ferry host join` against the real control plane served
on a loopback port: the token is printed alone, the join keeps the credential 0600."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

from ...served_app import served_control_plane

ADMIN = "cli-join-admin-token"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with served_control_plane(tmp_path, ADMIN) as url:
        yield url


def ferry(base_url: str, args: list[str], env: dict[str, str] | None = None) -> Result:
    state = CliState(client_factory=lambda: FerryClient(base_url, ADMIN))
    return CliRunner().invoke(cli_app, args, obj=state, env={"COLUMNS": "250", **(env or {})})


def test_a_token_from_the_operator_joins_a_server_once(base_url: str, tmp_path: Path) -> None:
    made = ferry(base_url, ["host", "token", "create", "--region", "sin", "--name", "box"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("fjt1_") and "\n" not in token
    state = tmp_path / "newhost"
    join_args = ["host", "join", base_url, "--region", "sin", "--id", "sin-7"]
    joined = ferry(
        base_url,
        [*join_args, "--state-dir", str(state), "--no-start"],
        env={"FERRY_JOIN_TOKEN": token},
    )
    assert joined.exit_code == 0, joined.output
    credential = state / "credential"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    facts = json.loads((state / "host.json").read_text())
    assert facts["id"] == "sin-7" and facts["address"] == "127.0.0.1"
    assert token not in (state / "host.json").read_text()
    with httpx.Client(base_url=base_url) as http:
        own = {"Authorization": f"Bearer {credential.read_text().strip()}"}
        assert http.post("/v1/hosts/sin-7/heartbeat", headers=own).status_code == 200
    listed = ferry(base_url, ["host", "token", "list"])
    assert "used by sin-7" in listed.stdout and token not in listed.stdout

    again = ferry(
        base_url,
        [*join_args, "--id", "sin-8", "--state-dir", str(tmp_path / "other"), "--no-start"],
        env={"FERRY_JOIN_TOKEN": token},
    )
    assert again.exit_code != 0 and "already used by host sin-7" in again.output
    assert not (tmp_path / "other" / "credential").exists()


def test_join_without_a_token_says_how_to_get_one(base_url: str, tmp_path: Path) -> None:
    refused = ferry(base_url, ["host", "join", base_url, "--region", "sin", "--no-start"], env={})
    assert refused.exit_code != 0 and "ferry host token create" in refused.output
