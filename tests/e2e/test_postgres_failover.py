"""Unplanned failover of a three-region `--sync` database, as its users live through it.

An app in iad, attached to the database, writes numbered rows through
``<db>.flycast:5432`` in a loop (one psql per row: each acknowledged commit is
remembered) while the primary's machine is killed with ``kill -9`` of its init, or
frozen (every process stopped, then thawed), or its region is cut off from the
others by the WAN (then healed). Each scenario asserts that writes go on
within a bound, that every acknowledged row is still there, that ``ferry postgres
status`` shows a new primary on a new timeline and the old primary back as a
replica. Each scenario leaves the database whole (all members streaming) for the next.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ferry.client import FerryClient
from ferry.cluster.ephemeral import copy_demo_app, ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from ferry.postgres import chaos
from ferry.postgres.chaos import Writer
from tests.e2e.conftest import ferry_ok as ferry
from tests.e2e.conftest import until

pytestmark = pytest.mark.e2e

DB = "pgfo"
APP = "pgwriter"
#: Generous on a shared 2-core machine; the figure (p50 <= 10 s) is bench/pg_failover.py's.
FAILOVER_BOUND = 45.0


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted() -> None:
    """This module's cluster is its own and purged at the end: the shared one is not used."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "iad", "sin"), octet=195) as settings:
        yield settings


def status(cluster: ClusterSettings) -> list[dict[str, Any]]:
    done = run_cli(cluster, "postgres", "status", DB, "--json")
    return json.loads(done.stdout) if done.returncode == 0 else []


def whole(rows: list[dict[str, Any]]) -> bool:
    """A running primary, two streaming replicas (one synchronous), one timeline."""
    primaries = [r for r in rows if r["role"] == "primary" and r["state"] == "running"]
    replicas = [
        r for r in rows if r["role"] != "primary" and r["state"] in ("running", "streaming")
    ]
    return (
        len(primaries) == 1
        and len(replicas) == 2
        and "sync replica" in {r["role"] for r in replicas}
        and len({r["timeline"] for r in rows}) == 1
    )


LAST_STATUS: list[list[dict[str, Any]]] = [[]]


def whole_status(cluster: ClusterSettings) -> list[dict[str, Any]] | None:
    """``status`` rows when the database is whole (the last rows kept for the message)."""
    rows = status(cluster)
    LAST_STATUS[0] = rows
    return rows if whole(rows) else None


def until_whole(
    cluster: ClusterSettings, what: str, also: Callable[[list[dict[str, Any]]], bool] = bool
) -> list[dict[str, Any]]:
    """Status rows once the database is whole and ``also`` holds for them. ``status`` asks
    the first member that answers: right after a partition heals, a member's view can
    still be the one from before the cut, which is whole too."""

    def ready() -> list[dict[str, Any]] | None:
        rows = whole_status(cluster)
        return rows if rows and also(rows) else None

    try:
        rows: list[dict[str, Any]] = until(what, ready, 180)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status: {LAST_STATUS[0]}") from None
    return rows


@pytest.fixture(scope="module")
def database(cluster: ClusterSettings, tmp_path_factory: pytest.TempPathFactory) -> str:
    create = ("postgres", "create", "--name", DB, "--region", "ams", "--replicas", "iad,sin")
    ferry(cluster, *create, "--sync")
    app_dir = copy_demo_app(tmp_path_factory.mktemp("app"))
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{APP}"')
    (app_dir / "fly.toml").write_text(
        toml.replace('primary_region = "ams"', 'primary_region = "iad"')
    )
    ferry(cluster, "deploy", cwd=app_dir)
    ferry(cluster, "postgres", "attach", DB, "-a", APP)
    return DB


@pytest.fixture
def writer(cluster: ClusterSettings, database: str) -> Iterator[Writer]:
    token = cluster.token_path.read_text().strip()
    with FerryClient(cluster.api_url, token) as client:
        found = chaos.writer_for_app(cluster, client, APP)
    try:
        found.start()
        yield found
    finally:
        found.close()


def primary_machine(cluster: ClusterSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The primary's machine (``machine list``), once the database is whole."""
    rows = until_whole(cluster, "the database whole")
    leader = next(r for r in rows if r["role"] == "primary")
    machines = json.loads(ferry(cluster, "machine", "list", "-a", DB, "--json").stdout)
    return next(m for m in machines if m["id"] == leader["name"]), rows


def settle_and_check(
    cluster: ClusterSettings, writer: Writer, old: dict[str, Any], before: list[dict[str, Any]]
) -> None:
    """The database whole again on a new timeline, the old primary a replica, and every
    acknowledged row present."""

    def moved_on(rows: list[dict[str, Any]]) -> bool:
        return any(r["name"] == old["id"] and r["role"] != "primary" for r in rows)

    rows = until_whole(cluster, "the old primary back as a replica", moved_on)
    roles = {r["name"]: r["role"] for r in rows}
    assert roles[old["id"]] in ("replica", "sync replica"), rows
    assert {r["timeline"] for r in rows} == {before[0]["timeline"] + 1}, rows
    settled = len(writer.acknowledged())
    until("rows acknowledged by the new primary", lambda: len(writer.acknowledged()) > settled)
    writer.stop()
    acknowledged = writer.acknowledged()
    missing = sorted(acknowledged - writer.rows_present())
    print(f"acknowledged {len(acknowledged)} rows, missing {len(missing)}")
    assert not missing, f"acknowledged rows lost: {missing[:20]}"


def test_kill_9_of_the_primary_machine_fails_over_and_loses_no_acknowledged_row(
    cluster: ClusterSettings, writer: Writer
) -> None:
    machine, before = primary_machine(cluster)
    until("rows acknowledged before the kill", lambda: len(writer.acknowledged()) >= 5, 60)
    killed_at = time.monotonic()
    chaos.kill_machine(cluster, machine["host_id"], machine["id"])
    seconds = writer.wait_for_write_after(killed_at, timeout=FAILOVER_BOUND)
    print(f"kill -9 of {machine['id']} ({machine['region']}): a write succeeded after {seconds} s")
    assert seconds is not None, f"no write through 5432 within {FAILOVER_BOUND:.0f} s"
    settle_and_check(cluster, writer, machine, before)


def test_a_frozen_primary_is_replaced_and_demotes_when_it_thaws(
    cluster: ClusterSettings, writer: Writer
) -> None:
    machine, before = primary_machine(cluster)
    until("rows acknowledged before the freeze", lambda: len(writer.acknowledged()) >= 5, 60)
    frozen_at = time.monotonic()
    init = chaos.freeze_machine(cluster, machine["host_id"], machine["id"])
    try:
        seconds = writer.wait_for_write_after(frozen_at, timeout=FAILOVER_BOUND)
        print(f"froze {machine['id']} ({machine['region']}): a write succeeded after {seconds} s")
        assert seconds is not None, f"no write through 5432 within {FAILOVER_BOUND:.0f} s"
    finally:
        chaos.thaw_machine(init)
    settle_and_check(cluster, writer, machine, before)


def on_member(cluster: ClusterSettings, member: str, sql: str) -> str:
    """``sql`` on the member's own Postgres (5433), through exec; "down" if it answers not."""
    read = f'PGPASSWORD=$SU_PASSWORD psql -h ::1 -p 5433 -U flypgadmin -d postgres -tAc "{sql}"'
    argv = ("ssh", "console", "-a", DB, "--machine", member, "-C", f"sh -c '{read}'")
    done = run_cli(cluster, *argv)
    return done.stdout.strip() if done.returncode == 0 else "down"


def test_a_primary_region_cut_off_by_the_wan_stops_taking_writes_and_rejoins(
    cluster: ClusterSettings, writer: Writer
) -> None:
    machine, before = primary_machine(cluster)
    if machine["region"] == "iad":  # the writer's own region must stay on the WAN
        ferry(cluster, "postgres", "failover", DB)  # to the synchronous replica, elsewhere
        old_timeline = before[0]["timeline"]

        def switched() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            # Until the new primary shows its new timeline: the cut's check counts from it.
            now, rows = primary_machine(cluster)
            timeline = next(r["timeline"] for r in rows if r["role"] == "primary")
            return (now, rows) if timeline > old_timeline else None

        machine, before = until("the switchover's new timeline", switched, FAILOVER_BOUND)
        assert machine["region"] != "iad"
    until("rows acknowledged before the cut", lambda: len(writer.acknowledged()) >= 5, 60)
    cut_at = time.monotonic()
    chaos.cut_region(cluster, machine["region"])
    try:
        seconds = writer.wait_for_write_after(cut_at, timeout=FAILOVER_BOUND)
        print(f"cut off {machine['region']}: a write succeeded after {seconds} s")
        assert seconds is not None, f"no write through 5432 within {FAILOVER_BOUND:.0f} s"
        # On its side of the cut the old primary has demoted itself: read-only (or down).
        demoted = until(
            "the cut-off primary read-only",
            lambda: on_member(cluster, machine["id"], "select pg_is_in_recovery()") != "f",
            FAILOVER_BOUND,
        )
        assert demoted is True
    finally:
        chaos.heal_region(cluster, machine["region"])
    settle_and_check(cluster, writer, machine, before)
