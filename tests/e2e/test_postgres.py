"""`ferry postgres` as a user meets it, in a cluster of its own: create a database,
see its primary in `status`, run SQL with `connect --command`, attach a deployed app
(which then connects with its DATABASE_URL from its own network), refusals of bad
input and of destroying an attached database, detach and destroy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.cluster.ephemeral import copy_demo_app, ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import ferry_ok as ferry
from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e

PSQL = "/usr/lib/postgresql/15/bin/psql"


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted() -> Iterator[None]:
    """This module's cluster is its own and purged at the end: the shared one is not used."""
    yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "iad", "sin"), octet=189) as settings:
        yield settings


def refused(cluster: ClusterSettings, *args: str) -> str:
    done = run_cli(cluster, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stderr


def apps(cluster: ClusterSettings) -> list[str]:
    return [a["name"] for a in json.loads(ferry(cluster, "apps", "list", "--json").stdout)]


def in_machine_network(
    cluster: ClusterSettings, machine: dict[str, Any], *argv: str
) -> subprocess.CompletedProcess[str]:
    """Run the host's ``argv`` in the machine's network namespace, resolving names as
    the machine does (its resolv.conf stands in for ``ip netns exec``'s)."""
    netns = f"{cluster.prefix}-vm-{machine['id']}"
    etc = Path("/etc/netns") / netns
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(cluster.host_dir(machine["host_id"]) / "resolv.conf", etc / "resolv.conf")
    try:
        return subprocess.run(
            ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=30
        )
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def test_bad_input_is_refused_and_nothing_is_created(cluster: ClusterSettings) -> None:
    assert "unknown region 'nowhere'" in refused(
        cluster, "postgres", "create", "--name", "pgbad", "--region", "nowhere"
    )
    assert "at least 1 GB" in refused(
        cluster, "postgres", "create", "--name", "pgbad", "--region", "ams", "--volume-size", "0"
    )
    assert "has uppercase letters" in refused(
        cluster, "postgres", "create", "--name", "PgBad", "--region", "ams"
    )
    assert "pgbad" not in apps(cluster)
    # No host of ams has 16 CPUs: refused before anything is made, naming the region.
    too_big = run_cli(
        cluster,
        "postgres",
        "create",
        "--name",
        "pgbig",
        "--region",
        "ams",
        "--vm-size",
        "performance-16x",
    )
    assert too_big.returncode == 1, too_big.stdout + too_big.stderr
    assert "no host in region ams with room for a 1 GB volume also has 16 CPU" in too_big.stderr
    assert "Creating pgbig" not in too_big.stdout and "pgbig" not in apps(cluster)
    assert "not a Ferry Postgres cluster" in refused(cluster, "postgres", "status", "pgnone")


def test_create_status_connect_attach_detach_destroy(
    cluster: ClusterSettings, tmp_path: Path
) -> None:
    started = time.monotonic()
    made = ferry(cluster, "postgres", "create", "--name", "pgdb", "--region", "ams")
    print(f"ferry postgres create (one member, image cached): {time.monotonic() - started:.1f} s")
    assert "is ready" in made.stdout
    assert "pgdb.internal" in made.stdout
    assert "--show-credentials" in made.stdout  # the password is not printed
    secrets = json.loads(ferry(cluster, "secrets", "list", "-a", "pgdb", "--json").stdout)
    names = {s["name"] for s in secrets["secrets"]}
    assert {"SU_PASSWORD", "REPL_PASSWORD", "OPERATOR_PASSWORD"} <= names

    (member,) = json.loads(ferry(cluster, "postgres", "status", "pgdb", "--json").stdout)
    assert (member["role"], member["state"], member["region"]) == ("primary", "running", "ams")
    (volume,) = json.loads(ferry(cluster, "volumes", "list", "-a", "pgdb", "--json").stdout)
    assert volume["attached_machine_id"] == member["name"]

    one = ferry(cluster, "postgres", "connect", "pgdb", "--command", "select 40 + 2 as answer")
    assert "42" in one.stdout
    bad_sql = run_cli(cluster, "postgres", "connect", "pgdb", "--command", "select nope")
    assert bad_sql.returncode != 0 and "nope" in bad_sql.stderr

    # An app attached to it gets DATABASE_URL and connects with it from its own network.
    app_dir = copy_demo_app(tmp_path)
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "pgapp"')
    (app_dir / "fly.toml").write_text(toml)
    ferry(cluster, "deploy", cwd=app_dir)
    attached = ferry(cluster, "postgres", "attach", "pgdb", "-a", "pgapp")
    assert "database pgapp, user pgapp" in attached.stdout
    again = refused(cluster, "postgres", "attach", "pgdb", "-a", "pgapp")
    assert "pgapp already has a DATABASE_URL secret" in again

    def started_machine() -> dict[str, Any] | None:
        listed = json.loads(ferry(cluster, "machine", "list", "-a", "pgapp", "--json").stdout)
        return next((m for m in listed if m["state"] == "started"), None)

    machine = until("pgapp's machine after the secrets roll", started_machine)
    url = ferry(
        cluster, "ssh", "console", "-a", "pgapp", "-C", "/bin/busybox sh -c 'echo $DATABASE_URL'"
    ).stdout.strip()
    assert url.startswith("postgres://pgapp:") and url.endswith("@pgdb.flycast:5432/pgapp")
    # The edge sends <db>.flycast:5432 straight to the primary's own Postgres (5433).
    query = "select current_user, current_database(), pg_is_in_recovery(), inet_server_port()"
    connected = in_machine_network(cluster, machine, PSQL, url, "-tA", "-c", query)
    assert connected.stdout.strip() == "pgapp|pgapp|f|5433", connected.stderr

    # Destroy is refused while pgapp is attached; after detach it goes, volume and all.
    assert "attached to pgapp" in refused(cluster, "postgres", "destroy", "pgdb", "--yes")
    ferry(cluster, "postgres", "detach", "pgdb", "-a", "pgapp")
    after = in_machine_network(cluster, machine, PSQL, url, "-tA", "-c", "select 1")
    assert after.returncode != 0  # its login is revoked
    app_secrets = json.loads(ferry(cluster, "secrets", "list", "-a", "pgapp", "--json").stdout)
    assert "DATABASE_URL" not in {s["name"] for s in app_secrets["secrets"]}
    ferry(cluster, "postgres", "destroy", "pgdb", "--yes")
    assert until("pgdb gone", lambda: "pgdb" not in apps(cluster), timeout=60)


def test_three_regions_make_one_cluster_with_synchronous_replicas(cluster: ClusterSettings) -> None:
    started = time.monotonic()
    ferry(
        cluster,
        "postgres",
        "create",
        "--name",
        "pgha",
        "--region",
        "ams",
        "--replicas",
        "iad,sin",
        "--sync",
    )
    print(
        f"ferry postgres create, three regions (image cached): {time.monotonic() - started:.1f} s"
    )
    ferry(cluster, "postgres", "connect", "pgha", "--command", "create table t (v int)")
    ferry(cluster, "postgres", "connect", "pgha", "--command", "insert into t values (7)")

    def members() -> list[dict[str, Any]]:
        return json.loads(ferry(cluster, "postgres", "status", "pgha", "--json").stdout)

    last: list[list[dict[str, Any]]] = []

    def all_streaming() -> list[dict[str, Any]] | None:
        last[:] = [members()]
        replicas = [r for r in last[0] if r["role"] != "primary"]
        # Patroni 3.0 (Debian bookworm) calls a streaming replica "running"; newer ones
        # say "streaming". Either way a replica with a known lag in bytes is replicating.
        ok = len(replicas) == 2 and all(
            r["state"] in ("running", "streaming") and isinstance(r["lag_bytes"], int)
            for r in replicas
        )
        # --sync: Patroni names a synchronous replica at its next cycle (loop_wait 10 s).
        ok = ok and "sync replica" in {r["role"] for r in replicas}
        return last[0] if ok else None

    try:
        rows = until("two streaming replicas, one synchronous", all_streaming, timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; status: {last}") from None
    assert (rows[0]["role"], rows[0]["region"]) == ("primary", "ams")
    assert {r["region"] for r in rows} == {"ams", "iad", "sin"}
    assert {r["timeline"] for r in rows} == {1}
    assert all(isinstance(r["lag_bytes"], int) for r in rows)
    # In the sin replica: its own Postgres (5433) has the row written on the primary and
    # is in recovery; its port 5432 forwards to the primary in ams.
    sin = next(r["name"] for r in rows if r["region"] == "sin")

    def on_sin(port: int) -> str:
        read = (
            f"PGPASSWORD=$SU_PASSWORD psql -h ::1 -p {port} -U flypgadmin -d postgres"
            ' -tAc "select v, pg_is_in_recovery() from t"'
        )
        argv = ("ssh", "console", "-a", "pgha", "--machine", sin, "-C", f"sh -c '{read}'")
        done = run_cli(cluster, *argv)
        return done.stdout.strip() if done.returncode == 0 else done.stderr

    assert on_sin(5433) == "7|t"
    assert on_sin(5432) == "7|f"

    # A failover (Patroni's switchover): the primary leaves ams, the old one rejoins as a
    # replica, writes go on, and sin's 5432 follows the new primary.
    assert "no healthy replica in 'nowhere'" in refused(
        cluster, "postgres", "failover", "pgha", "--region", "nowhere"
    )
    moved = ferry(cluster, "postgres", "failover", "pgha")
    print(moved.stdout.strip())
    assert "moved from" in moved.stdout

    def on_timeline_2() -> list[dict[str, Any]] | None:
        rows = all_streaming()
        return rows if rows and {r["timeline"] for r in rows} == {2} else None

    after = until("two replicas again, on timeline 2", on_timeline_2, timeout=90)
    assert after[0]["role"] == "primary" and after[0]["region"] != "ams"
    assert {r["timeline"] for r in after} == {2}
    ferry(cluster, "postgres", "connect", "pgha", "--command", "update t set v = 8")
    assert until("sin's 5432 on the new primary", lambda: on_sin(5432) == "8|f", timeout=30)
    table = ferry(cluster, "postgres", "status", "pgha").stdout
    assert "primary" in table and "LAG" in table
    ferry(cluster, "postgres", "destroy", "pgha", "--yes")
    assert until("pgha gone", lambda: "pgha" not in apps(cluster), timeout=60)
