"""Replicas that follow the app, as a user meets them: a database in ams, an app whose
fly.toml says ``[postgres] replicas = "follow"`` (short windows, so the test is quick);
scaling the app into sin makes a streaming replica appear there, holding the data;
scaling it out of sin makes the replica and its volume go; the ams member stays.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ferry.cluster.ephemeral import copy_demo_app, ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from tests.e2e.conftest import ferry_ok as ferry
from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e

SCALE_OUT_AFTER = 2.0
SCALE_IN_AFTER = 3.0
#: Beyond the window: a volume, a machine start, Patroni's basebackup and first loop.
BOUND = 120.0


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted() -> Iterator[None]:
    """This module's cluster is its own and purged at the end: the shared one is not used."""
    yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "sin"), octet=199) as settings:
        yield settings


def members(cluster: ClusterSettings) -> list[dict[str, Any]]:
    done = run_cli(cluster, "postgres", "status", "pgf", "--json")
    return json.loads(done.stdout) if done.returncode == 0 else []


def volumes(cluster: ClusterSettings) -> list[dict[str, Any]]:
    listed = json.loads(ferry(cluster, "volumes", "list", "-a", "pgf", "--json").stdout)
    return [v for v in listed if v["state"] != "destroyed"]


def machines(cluster: ClusterSettings, app: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(
        ferry(cluster, "machine", "list", "-a", app, "--json").stdout
    )
    return listed


@pytest.fixture(scope="module")
def database(cluster: ClusterSettings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``pgf`` in ams holding one row, and ``pgfapp`` deployed in ams following it."""
    ferry(cluster, "postgres", "create", "--name", "pgf", "--region", "ams")
    ferry(cluster, "postgres", "connect", "pgf", "--command", "create table t (v int)")
    ferry(cluster, "postgres", "connect", "pgf", "--command", "insert into t values (42)")
    app_dir = copy_demo_app(tmp_path_factory.mktemp("app"))
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', 'app = "pgfapp"')
    toml += (
        f'\n[postgres]\n  database = "pgf"\n  replicas = "follow"\n'
        f'  scale_out_after = "{SCALE_OUT_AFTER:g}s"\n  scale_in_after = "{SCALE_IN_AFTER:g}s"\n'
    )
    (app_dir / "fly.toml").write_text(toml)
    deployed = ferry(cluster, "deploy", cwd=app_dir)
    assert "[postgres] sent: the replicas of pgf follow the app" in deployed.stdout
    assert "pgfapp is not attached to pgf" in deployed.stdout  # a warning, not a refusal
    assert {m["region"] for m in members(cluster)} == {"ams"}
    return "pgf"


def test_a_replica_appears_where_the_app_has_run_for_the_window(
    cluster: ClusterSettings, database: str
) -> None:
    started = time.monotonic()
    ferry(cluster, "scale", "count", "1", "--region", "sin", "-a", "pgfapp", "--yes")
    app_up = time.monotonic()
    assert any(m["region"] == "sin" for m in machines(cluster, "pgfapp"))

    def follower() -> dict[str, Any] | None:
        return next((m for m in machines(cluster, database) if m["region"] == "sin"), None)

    made = until("a follower machine in sin", follower, SCALE_OUT_AFTER + 30)
    created = time.monotonic()
    until(
        "the follower started",
        lambda: (follower() or {}).get("state") == "started",
        BOUND,
    )
    machine_up = time.monotonic()

    def streaming_in_sin() -> dict[str, Any] | None:
        rows = members(cluster)
        sin = [r for r in rows if r["region"] == "sin"]
        ok = len(sin) == 1 and sin[0]["role"] == "replica"
        ok = ok and sin[0]["state"] in ("running", "streaming")
        return sin[0] if ok and isinstance(sin[0]["lag_bytes"], int) else None

    replica = until("a streaming replica in sin", streaming_in_sin, BOUND)
    done = time.monotonic()
    print(
        f"scale-out: app machine in sin {app_up - started:.1f} s; follower created"
        f" {created - app_up:.1f} s later (window {SCALE_OUT_AFTER:g} s), started"
        f" {machine_up - created:.1f} s later, streaming {done - machine_up:.1f} s later"
    )
    assert replica["name"] == made["id"]
    read = (
        "PGPASSWORD=$SU_PASSWORD psql -h ::1 -p 5433 -U flypgadmin -d postgres"
        ' -tAc "select v, pg_is_in_recovery() from t"'
    )
    argv = ("ssh", "console", "-a", database, "--machine", made["id"], "-C", f"sh -c '{read}'")
    assert ferry(cluster, *argv).stdout.strip() == "42|t"
    follow_volume = [v for v in volumes(cluster) if v["name"] == "pg_follow"]
    assert [v["region"] for v in follow_volume] == ["sin"]


def test_the_replica_goes_after_the_app_left_and_the_primary_stays(
    cluster: ClusterSettings, database: str
) -> None:
    started = time.monotonic()
    ferry(cluster, "scale", "count", "0", "--region", "sin", "-a", "pgfapp", "--yes")

    def machine_gone() -> bool:
        listed = machines(cluster, database)
        return all(
            m["region"] != "sin" or m["state"] in ("destroying", "destroyed") for m in listed
        )

    until("the follower machine gone", machine_gone, SCALE_IN_AFTER + 60)
    destroyed = time.monotonic()
    until(
        "its volume gone",
        lambda: all(v["name"] != "pg_follow" for v in volumes(cluster)),
        60,
    )
    volume_gone = time.monotonic()
    # Patroni forgets the member when its key's TTL (30 s) runs out.
    until("status without sin", lambda: {r["region"] for r in members(cluster)} == {"ams"}, 90)
    print(
        f"scale-in: follower destroyed {destroyed - started:.1f} s after the app left sin"
        f" (window {SCALE_IN_AFTER:g} s), volume {volume_gone - destroyed:.1f} s later,"
        f" gone from status {time.monotonic() - volume_gone:.1f} s later"
    )
    (primary,) = members(cluster)
    assert (primary["role"], primary["region"]) == ("primary", "ams")
    selected = ferry(cluster, "postgres", "connect", database, "--command", "select v from t")
    assert "42" in selected.stdout
    ferry(cluster, "postgres", "destroy", database, "--yes", "--force")


@pytest.mark.timeout(600)
def test_a_full_disk_stops_writes_and_extend_brings_them_back_with_the_data_intact(
    cluster: ClusterSettings,
) -> None:
    """A 1 GB database, most of it taken by a ballast file, filled by big INSERTs: the
    one that does not fit fails with "No space left on device"; after `ferry volumes
    extend` (and the restart it asks for), every committed row is there, every page
    reads back against its data checksum, and writes work again."""
    ferry(cluster, "postgres", "create", "--name", "pgfull", "--region", "ams")

    def sql(statement: str) -> Any:
        return run_cli(cluster, "postgres", "connect", "pgfull", "--command", statement, timeout=60)

    # The WAL a lost replica's slot may keep is a quarter of the 1 GB volume, not all of it.
    kept = sql("show max_slot_wal_keep_size").stdout
    assert re.search(r"\b2[0-9]{2}MB\b", kept), kept
    assert sql("create table big (id bigserial primary key, pad text)").returncode == 0
    assert sql("insert into big (pad) values ('kept')").returncode == 0
    (volume,) = volumes_of(cluster, "pgfull")
    member = volume["attached_machine_id"]
    # Most of the disk taken at once, so the rows fill the rest in a few statements.
    ballast = "fallocate -l 600M /data/ballast"
    ferry(cluster, "ssh", "console", "-a", "pgfull", "--machine", member, "-C", ballast)
    committed, error = 1, ""
    fill = "insert into big (pad) select repeat(md5(i::text), 30) from generate_series(1, 50000) i"
    started = time.monotonic()
    for _ in range(20):  # 50 MB of rows (and as much WAL) each: ~400 MB are free
        done = sql(fill)
        if done.returncode != 0:
            error = (done.stderr or done.stdout).strip().splitlines()[0]
            break
        committed += 50_000
    print(f"disk full after {committed} rows, {time.monotonic() - started:.1f} s: {error}")
    assert "No space left on device" in error, error

    grown = ferry(cluster, "volumes", "extend", volume["id"], "-s", "2", "-a", "pgfull")
    if "restart" in grown.stdout:  # no online growth here (no CAP_SYS_RESOURCE)
        ferry(cluster, "machine", "restart", member, "-a", "pgfull")
    started = time.monotonic()
    until(
        "a write after the extend",
        lambda: sql("insert into big (pad) values ('after')").returncode == 0,
        180,
    )
    print(f"writes back {time.monotonic() - started:.1f} s after the extend")
    counts = sql(
        "select 'rows=' || count(*) || ',marked=' || count(*) filter"
        " (where pad in ('kept', 'after')) from big"
    )
    assert f"rows={committed + 1},marked=2" in counts.stdout, counts.stdout + counts.stderr
    # Reads every page of the table: a page whose data checksum fails is an error.
    check = sql("select 'read=' || (sum(length(pad)) > 0) from big")
    assert check.returncode == 0 and "read=true" in check.stdout, check.stderr
    ferry(cluster, "postgres", "destroy", "pgfull", "--yes", "--force")


def volumes_of(cluster: ClusterSettings, app: str) -> list[dict[str, Any]]:
    listed = json.loads(ferry(cluster, "volumes", "list", "-a", app, "--json").stdout)
    return [v for v in listed if v["state"] != "destroyed"]
