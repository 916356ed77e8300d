"""`ferry ips list|allocate-v6|allocate-v4|release` against the real control plane on a
loopback port: a Flycast address is allocated, listed (table and JSON) and released;
public addresses and foreign organizations are refused with the reason."""

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

ADMIN = "cli-ips-admin-token"


@pytest.fixture
def member(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, token of alice, admin of acme, which has the app ``rocket``)."""
    with served_control_plane(tmp_path, ADMIN) as url:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=url, headers=admin) as http:
            made = http.post("/v1/orgs", json={"slug": "acme", "admin_email": "alice@acme.test"})
            invitation = made.json()["admin_invitation"]["invitation"]
            token = http.post("/v1/invitations/accept", json={"invitation": invitation}).json()
            app = http.post(
                "/v1/apps",
                json={"app_name": "rocket"},
                headers={"Authorization": f"Bearer {token['token']}"},
            )
            assert app.status_code == 201, app.text
        yield url, token["token"]


def ferry(member: tuple[str, str], *args: str) -> Result:
    url, token = member
    state = CliState(client_factory=lambda: FerryClient(url, token))
    return CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "250"})


def test_allocate_list_and_release_a_flycast_address(member: tuple[str, str]) -> None:
    empty = ferry(member, "ips", "list", "-a", "rocket")
    assert empty.exit_code == 0 and "no IP addresses" in empty.output

    made = ferry(member, "ips", "allocate-v6", "--private", "-a", "rocket", "--org", "acme")
    assert made.exit_code == 0, made.output
    assert "private" in made.stdout and "acme/default" in made.stdout
    assert "rocket.flycast" in made.output

    listed = ferry(member, "ips", "list", "-a", "rocket", "--json")
    assert listed.exit_code == 0, listed.output
    (ip,) = json.loads(listed.stdout)["ips"]
    assert ip["type"] == "private_v6" and ip["ip"].startswith("fdaa:")
    table = ferry(member, "ips", "list", "-a", "rocket").stdout
    assert ip["ip"] in table and "VERSION" in table

    released = ferry(member, "ips", "release", ip["ip"], "-a", "rocket")
    assert released.exit_code == 0 and f"Released {ip['ip']} from rocket" in released.output
    again = ferry(member, "ips", "release", ip["ip"], "-a", "rocket")
    assert again.exit_code != 0 and "has no IP address" in again.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("allocate-v6",), "no public addresses"),
        (("allocate-v4",), "no public addresses"),
        (("allocate-v4", "--shared"), "no public addresses"),
        (("allocate-v6", "--private", "--org", "globex"), "belongs to 'acme'"),
        (("allocate-v6", "--private", "--network", "blue"), "custom 6PN networks"),
    ],
)
def test_refusals_say_why_and_allocate_nothing(
    member: tuple[str, str], args: tuple[str, ...], says: str
) -> None:
    refused = ferry(member, "ips", *args, "-a", "rocket")
    assert refused.exit_code != 0 and says in refused.output
    assert "no IP addresses" in ferry(member, "ips", "list", "-a", "rocket").output
