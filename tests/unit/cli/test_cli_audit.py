"""`ferry audit` against the real control plane served by uvicorn on a loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from ferry.cli.context import CliState
from ferry.cli.main import app as cli_app
from ferry.client import FerryClient

from ...served_app import served_control_plane

ADMIN = "cli-audit-admin-token"


@pytest.fixture
def base_url(tmp_path: Path) -> Iterator[str]:
    with served_control_plane(tmp_path, ADMIN) as url:
        yield url


def _admin_of(http: httpx.Client, slug: str, email: str) -> str:
    created = http.post("/v1/orgs", json={"slug": slug, "admin_email": email})
    assert created.status_code == 201, created.text
    invitation = created.json()["admin_invitation"]["invitation"]
    accepted = http.post("/v1/invitations/accept", json={"invitation": invitation})
    assert accepted.status_code == 201, accepted.text
    token: str = accepted.json()["token"]
    return token


def _ferry(base_url: str, token: str, args: list[str]) -> Result:
    state = CliState(client_factory=lambda: FerryClient(base_url, token))
    return CliRunner().invoke(cli_app, args, obj=state, env={"COLUMNS": "250"})


@pytest.fixture
def tokens(base_url: str) -> dict[str, str]:
    """acme (alice, app ``rocket``), globex (bob), and bob's failed delete of rocket."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
        alice = _admin_of(http, "acme", "alice@acme.test")
        bob = _admin_of(http, "globex", "bob@globex.test")
        made = http.post(
            "/v1/apps", json={"app_name": "rocket"}, headers={"Authorization": f"Bearer {alice}"}
        )
        assert made.status_code == 201, made.text
        refused = http.delete("/v1/apps/rocket", headers={"Authorization": f"Bearer {bob}"})
        assert refused.status_code == 404
    return {"alice": alice, "bob": bob}


def test_an_admin_sees_who_did_what_from_where(base_url: str, tokens: dict[str, str]) -> None:
    shown = _ferry(base_url, tokens["alice"], ["audit", "-o", "acme"])
    assert shown.exit_code == 0, shown.output
    header, attempt, created = shown.stdout.splitlines()[:3]
    for column in ("ID", "WHEN (UTC)", "WHO", "ACTION", "FROM", "STATUS", "OUTCOME"):
        assert column in header
    assert "(bob@globex.test)" in attempt and "DELETE /v1/apps/rocket" in attempt
    assert "127.0.0.1" in attempt and "404" in attempt and "app 'rocket' not found" in attempt
    assert "(alice@acme.test)" in created and "POST /v1/apps app_name=rocket" in created

    as_json = _ferry(base_url, tokens["alice"], ["audit", "-o", "acme", "--json", "--limit", "1"])
    assert as_json.exit_code == 0, as_json.output
    (record,) = json.loads(as_json.stdout)
    assert record["route"] == "/v1/apps/{app_name}" and record["status"] == 404
    assert record["target"] == {"app_name": "rocket"} and record["source"] == "127.0.0.1"


def test_another_organization_and_bad_options_are_refused(
    base_url: str, tokens: dict[str, str]
) -> None:
    refused = _ferry(base_url, tokens["bob"], ["audit", "-o", "acme"])
    assert refused.exit_code == 1
    assert "organization 'acme' not found" in refused.stderr
    everything = _ferry(base_url, tokens["bob"], ["audit"])
    assert everything.exit_code == 1 and "the cluster operator's" in everything.stderr
    bad = _ferry(base_url, tokens["alice"], ["audit", "-o", "acme", "--limit", "0"])
    assert bad.exit_code == 2 and "--limit" in bad.stderr


def test_the_operator_sees_every_organization_and_pages(
    base_url: str, tokens: dict[str, str]
) -> None:
    first = _ferry(base_url, ADMIN, ["audit", "--limit", "2"])
    assert first.exit_code == 0, first.output
    assert "ORG" in first.stdout.splitlines()[0]
    hint = first.stdout.strip().splitlines()[-1]
    assert hint.startswith("older records: ferry audit --before ")
    older = _ferry(base_url, ADMIN, ["audit", "--before", hint.rsplit(" ", 1)[1], "--json"])
    ids = [r["id"] for r in json.loads(older.stdout)]
    assert ids and max(ids) < int(hint.rsplit(" ", 1)[1])
