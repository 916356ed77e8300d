"""`ferry orgs`, `ferry tokens` and `ferry apps move` as a user runs them, against the
real control plane (uvicorn on a loopback port); the token comes from the environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from ferry.cli.main import app as cli_app
from tests.unit.client.test_client_server import TOKEN, base_url

__all__ = ["base_url"]

INVITATION = re.compile(r"^  (foi1_\S+)$", re.MULTILINE)
USER_TOKEN = re.compile(r"^  export FERRY_API_TOKEN=(fo1_\S+)$", re.MULTILINE)


class Ferry:
    """Runs `ferry …` with FERRY_API_URL and FERRY_API_TOKEN set as a user would."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home

    def __call__(
        self,
        *args: str,
        token: str | None = TOKEN,
        input: str | None = None,
        fly_app: str | None = None,
    ) -> Result:
        env = {
            "COLUMNS": "200",
            "FERRY_API_URL": self.url,
            "FERRY_HOME": str(self.home),  # no admin-token file to fall back on
            "FERRY_API_TOKEN": token,
            "FLY_API_TOKEN": None,
            "FLY_APP": fly_app,
        }
        return CliRunner().invoke(cli_app, list(args), env=env, input=input)


@pytest.fixture
def ferry(base_url: str, tmp_path: Path) -> Ferry:
    return Ferry(base_url, tmp_path)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def org_with_admin(ferry: Ferry, slug: str, email: str) -> str:
    """The operator creates ``slug`` with ``email`` as admin, who joins; their token."""
    created = ok(ferry("orgs", "create", slug, "--admin", email))
    (invitation,) = INVITATION.findall(created.stdout)
    joined = ok(ferry("orgs", "join", token=None, input=invitation + "\n"))
    (token,) = USER_TOKEN.findall(joined.stdout)
    return token


def test_operator_org_admin_joins_deploy_token_sees_only_its_app_then_revoked(
    ferry: Ferry,
) -> None:
    created = ok(ferry("orgs", "create", "acme", "--name", "Acme Inc", "--admin", "a@acme.test"))
    assert "Created organization acme (Acme Inc)" in created.stdout
    assert "to join acme as admin" in created.stdout and "ferry orgs join" in created.stdout
    (invitation,) = INVITATION.findall(created.stdout)

    joined = ok(ferry("orgs", "join", token=None, input=invitation + "\n"))
    assert "Joined acme as admin (a@acme.test)" in joined.stdout
    (alice,) = USER_TOKEN.findall(joined.stdout)
    again = ferry("orgs", "join", invitation, token=None)
    assert again.exit_code == 1 and again.stderr.startswith("Error: ")

    assert "organization acme" in ok(ferry("apps", "create", "rocket", token=alice)).stdout
    ok(ferry("apps", "create", "moon", "--org", "acme", token=alice))
    made = ok(
        ferry("tokens", "create", "deploy", "-a", "rocket", "-n", "ci", "-x", "24h", token=alice)
    )
    deploy = made.stdout.strip()
    assert made.stdout == deploy + "\n" and deploy.startswith("fo1_")
    assert "deploy token" in made.stderr and "(ci) for app rocket" in made.stderr

    listed = json.loads(ok(ferry("apps", "list", "--json", token=deploy)).stdout)
    assert [app["name"] for app in listed] == ["rocket"]
    hidden = ferry("apps", "destroy", "moon", "--yes", token=deploy)
    assert hidden.exit_code == 1 and "Error: app 'moon' does not exist" in hidden.stderr
    assert "moon" in ok(ferry("apps", "list", token=alice)).stdout  # untouched

    table = ok(ferry("tokens", "list", token=alice)).stdout
    row = next(line for line in table.splitlines() if " ci " in line)
    token_id = row.split()[0]
    assert "deploy" in row and "app rocket" in row and "active" in row
    assert deploy not in table and deploy[-20:] not in table
    as_json = json.loads(ok(ferry("tokens", "list", "-o", "acme", "--json", token=alice)).stdout)
    assert all("token" not in info for info in as_json)

    assert (
        f"Revoked token {token_id} (ci)"
        in ok(ferry("tokens", "revoke", token_id, token=alice)).stdout
    )
    refused = ferry("apps", "list", token=deploy)
    assert refused.exit_code == 1 and "token 'ci' was revoked" in refused.stderr
    assert "revoked" in ok(ferry("tokens", "list", "-a", "rocket", token=alice)).stdout


def test_the_last_admin_is_refused_with_the_reason_and_what_to_do(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    refused = ferry("orgs", "remove", "acme", "a@acme.test", token=alice)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [
        "Error: a@acme.test is the last admin of 'acme'",
        "make another member admin first, or destroy the organization",
    ]
    demoted = ferry("orgs", "set-role", "acme", "a@acme.test", "member", token=alice)
    assert demoted.exit_code == 1 and "last admin" in demoted.stderr
    assert "a@acme.test  admin" in ok(ferry("orgs", "members", "acme", token=alice)).stdout


def test_a_bad_expiry_is_refused_and_creates_nothing(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    ok(ferry("apps", "create", "rocket", token=alice))
    before = ok(ferry("tokens", "list", "--json")).stdout
    bad = ferry("tokens", "create", "deploy", "--expiry", "soon", token=alice, fly_app="rocket")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "Error: invalid expiry 'soon'",
        "write it like 24h, 720h or 30m",
    ]
    assert ok(ferry("tokens", "list", "--json")).stdout == before
    # FLY_APP names the app, as for every -a option
    made = ok(ferry("tokens", "create", "deploy", token=alice, fly_app="rocket"))
    assert "for app rocket" in made.stderr


def test_invite_set_role_show_and_remove(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    ok(ferry("apps", "create", "rocket", token=alice))
    invited = ok(ferry("orgs", "invite", "acme", "c@acme.test", token=alice))
    assert "to join acme as member" in invited.stdout
    (invitation,) = INVITATION.findall(invited.stdout)
    pending = ok(ferry("orgs", "invitations", "acme", token=alice)).stdout
    assert "c@acme.test" in pending and "pending" in pending and invitation not in pending
    joined = ok(ferry("orgs", "join", invitation, "--json", token=None))
    carol = json.loads(joined.stdout)["token"]
    refused = ferry("orgs", "invite", "acme", "d@acme.test", token=carol)
    assert refused.exit_code == 1 and "needs an admin" in refused.stderr

    assert (
        "c@acme.test is now admin of acme"
        in ok(ferry("orgs", "set-role", "acme", "c@acme.test", "ADMIN", token=alice)).stdout
    )
    shown = json.loads(ok(ferry("orgs", "show", "acme", "--json", token=carol)).stdout)
    assert shown["apps"] == ["rocket"]
    assert [(m["email"], m["role"]) for m in shown["members"]] == [
        ("a@acme.test", "admin"),
        ("c@acme.test", "admin"),
    ]
    text = ok(ferry("orgs", "show", "acme", token=carol)).stdout
    assert "Members (2):" in text and "Apps (1):" in text and "rocket" in text
    ok(ferry("orgs", "remove", "acme", "a@acme.test", token=carol))
    gone = ferry("orgs", "show", "acme", token=alice)
    assert gone.exit_code == 1 and "organization 'acme' not found" in gone.stderr


def test_another_org_sees_404_and_the_operator_moves_an_app(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    bob = org_with_admin(ferry, "globex", "b@globex.test")
    ok(ferry("apps", "create", "rocket", token=alice))
    deploy = ok(ferry("tokens", "create", "deploy", "-a", "rocket", token=alice)).stdout.strip()
    listed = json.loads(ok(ferry("orgs", "list", "--json", token=bob)).stdout)
    assert [(org["name"], org["slug"]) for org in listed] == [("globex", "globex")]
    for args in (["orgs", "show", "acme"], ["apps", "list", "-o", "acme"]):
        hidden = ferry(*args, token=bob)
        assert hidden.exit_code == 1 and "organization 'acme' not found" in hidden.stderr
    stolen = ferry("apps", "move", "rocket", "--to", "globex", "--yes", token=bob)
    assert stolen.exit_code == 1 and "app 'rocket' not found" in stolen.stderr
    cannot = ferry("apps", "move", "rocket", "--to", "globex", "--yes", token=alice)
    assert cannot.exit_code == 1 and "organization 'globex' not found" in cannot.stderr

    kept = ferry("apps", "move", "rocket", "--to", "globex", input="n\n")
    assert kept.exit_code == 1
    assert "Move app rocket from acme to globex?" in kept.stdout
    moved = ok(ferry("apps", "move", "--to", "globex", "--yes", fly_app="rocket"))
    assert "Moved app rocket from acme to globex" in moved.stdout
    assert "globex" in ok(ferry("apps", "list", "--org", "globex", token=bob)).stdout
    assert ferry("apps", "list", token=deploy).exit_code == 1  # app tokens ended with the move
    assert "No apps yet" in ok(ferry("apps", "list", token=alice)).stdout


def test_orgs_destroy_asks_refuses_with_apps_and_keeps_personal(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    ok(ferry("apps", "create", "rocket", token=alice))
    busy = ferry("orgs", "destroy", "acme", "--yes", token=alice)
    assert busy.exit_code == 1
    assert busy.stderr.splitlines() == [
        "Error: organization 'acme' still has apps: rocket",
        "destroy them or move them to another organization first",
    ]
    ok(ferry("apps", "destroy", "rocket", "--yes", token=alice))
    kept = ferry("orgs", "destroy", "acme", token=alice, input="n\n")
    assert kept.exit_code == 1 and "Destroy organization acme?" in kept.stdout
    assert "acme" in ok(ferry("orgs", "list")).stdout
    assert "Destroyed organization acme" in ok(ferry("orgs", "destroy", "acme", "--yes")).stdout
    assert "acme" not in ok(ferry("orgs", "list")).stdout
    personal = ferry("orgs", "destroy", "personal", "--yes")
    assert personal.exit_code == 1 and "cannot be destroyed" in personal.stderr


def test_token_kinds_and_bad_input(ferry: Ferry) -> None:
    alice = org_with_admin(ferry, "acme", "a@acme.test")
    org_token = ok(ferry("tokens", "create", "org", "--json", token=alice))  # her only org
    assert json.loads(org_token.stdout)["org_slug"] == "acme"
    which = ferry("tokens", "create", "org")  # the operator sees several
    assert which.exit_code == 1 and "name the organization with -o ORG" in which.stderr
    assert "acme, personal" in which.stderr
    both = ferry("tokens", "create", "readonly", "-a", "x", "-o", "acme", token=alice)
    assert both.exit_code == 1 and "give -a APP or -o ORG, not both" in both.stderr
    readonly = ok(ferry("tokens", "create", "readonly", token=alice)).stdout.strip()
    changed = ferry("apps", "create", "nope", token=readonly)
    assert changed.exit_code == 1 and "may not do this in 'acme'" in changed.stderr

    host = ferry("tokens", "create", "host", "--host-id", "ams-1", "--region", "ams", token=alice)
    assert host.exit_code == 1 and "only the operator creates host credentials" in host.stderr
    edge = ok(ferry("tokens", "create", "edge", "--region", "ams", "--json"))
    assert json.loads(edge.stdout)["name"] == "edge-ams"
    made = ok(ferry("tokens", "create", "host", "--host-id", "ams-1", "--region", "ams"))
    assert "host token" in made.stderr and "for host ams-1 (ams)" in made.stderr

    bad_role = ferry("orgs", "invite", "acme", "x@acme.test", "--role", "owner", token=alice)
    assert bad_role.exit_code == 2 and "owner" in bad_role.stderr
    bad_email = ferry("orgs", "invite", "acme", "not-an-email", token=alice)
    assert bad_email.exit_code == 1 and "invalid email 'not-an-email'" in bad_email.stderr
    nothing = ferry("orgs", "join", token=None, input="\n")
    assert nothing.exit_code == 1 and "no invitation given" in nothing.stderr
    unknown = ferry("tokens", "revoke", "0123456789abcdef", token=alice)
    assert unknown.exit_code == 1 and "token '0123456789abcdef' not found" in unknown.stderr
    anonymous = ferry("orgs", "list", token=None)
    assert anonymous.exit_code == 1 and "Error: missing token" in anonymous.stderr
