"""Two organizations on one cluster, as their people see it through the CLI: neither
sees the other's app, every attempt is in the victim's audit trail, a deploy token
is held to its app, and a secret reaches the machine without showing up anywhere."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

from ferry.client import FerryClient
from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import demo_dir, ferry


def _member(cluster: ClusterSettings, org: str, email: str) -> str:
    """The operator creates ``org`` with ``email`` as admin; that admin joins (the
    invitation piped in as a user would) and gets their user token."""
    created = ferry(cluster, "orgs", "create", org, "--admin", email, "--json")
    assert created.returncode == 0, created.stderr
    invitation = json.loads(created.stdout)["admin_invitation"]["invitation"]
    joined = ferry(cluster, "orgs", "join", "--json", stdin=invitation + "\n")
    assert joined.returncode == 0, joined.stderr
    token: str = json.loads(joined.stdout)["token"]
    return token


def _refused(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


def test_two_organizations_cannot_reach_each_other_and_the_attempts_are_audited(
    cluster: ClusterSettings, client: FerryClient, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    acme, globex = f"acme-{suffix}", f"globex-{suffix}"
    alice = _member(cluster, acme, f"alice-{suffix}@acme.test")
    bob = _member(cluster, globex, f"bob-{suffix}@globex.test")

    app = f"rocket-{suffix}"
    app_dir = demo_dir(tmp_path)
    toml = app_dir / "fly.toml"
    toml.write_text(toml.read_text().replace('app = "hello"', f'app = "{app}"'))
    deployed = ferry(cluster, "deploy", "--regions", "iad", cwd=app_dir, token=alice)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert client.get_app(app).organization.slug == acme
    (machine,) = client.list_machines(app)

    nothing = f"nothing-{suffix}"
    for args in [
        ("status", "-a", app),
        ("machine", "stop", machine.id, "-a", app),
        ("machine", "status", machine.id, "-a", app),
        ("logs", "-a", app, "--no-tail"),
        ("secrets", "list", "-a", app),
        ("releases", "-a", app),
        ("apps", "destroy", app, "--yes"),
    ]:
        said = _refused(ferry(cluster, *args, token=bob))
        # Word for word what the same command says about an app that does not exist.
        absent = _refused(ferry(cluster, *(nothing if a == app else a for a in args), token=bob))
        assert said.replace(app, "X") == absent.replace(nothing, "X"), (args, said, absent)
        assert "not found" in said or "does not exist" in said, (args, said)
    listed = ferry(cluster, "apps", "list", "--json", token=bob)
    assert app not in listed.stdout
    assert client.get_machine(app, machine.id).state.value == "started"  # untouched

    trail = ferry(cluster, "audit", "-o", acme, "--json", token=alice)
    assert trail.returncode == 0, trail.stderr
    attempts = [r for r in json.loads(trail.stdout) if r["status"] == 404]
    routes = {r["route"] for r in attempts}
    assert "/v1/apps/{app_name}/machines/{machine_id}/stop" in routes, attempts
    assert all(globex in r["actor"] or "bob" in r["actor"] for r in attempts), attempts
    assert _refused(ferry(cluster, "audit", "-o", acme, token=bob))

    deploy = ferry(cluster, "tokens", "create", "deploy", "-a", app, "--name", "ci", token=alice)
    assert deploy.returncode == 0, deploy.stderr
    ci = deploy.stdout.strip()
    only = ferry(cluster, "apps", "list", "--json", token=ci)
    assert [a["name"] for a in json.loads(only.stdout)] == [app], only.stdout
    assert "not found" in _refused(ferry(cluster, "orgs", "show", acme, token=ci))

    value = f"swordfish-{secrets.token_hex(8)}"
    stored = ferry(cluster, "secrets", "set", f"LAUNCH_CODE={value}", "-a", app, token=ci)
    assert stored.returncode == 0, stored.stdout + stored.stderr
    assert value not in stored.stdout + stored.stderr
    shown = ferry(cluster, "secrets", "list", "-a", app, "--json", token=alice)
    assert "LAUNCH_CODE" in shown.stdout and value not in shown.stdout
    (rolled,) = client.list_machines(app)
    assert value not in rolled.model_dump_json()
    leaked = subprocess.run(
        ["grep", "-rl", "--exclude=config.json", value, str(cluster.home)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert leaked.stdout == "", f"the secret is in plain text in {leaked.stdout}"
