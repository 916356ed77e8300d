"""Writes from far away: the example app ``examples/pg-replay`` as a user deploys it.

A database with its primary in ams and a replica in sin (``ferry postgres create``),
the example deployed in ams and sin with ``ferry deploy`` and attached with
``ferry postgres attach``. Clients in sin go through the sin edge: a read is served
by the sin machine from the sin replica; a write is answered by the sin machine with
``Fly-Replay: region=ams``, replayed by the edge, committed on the primary in ams,
and then readable in sin. A write hidden in a GET is caught by the replica's
read-only error and replayed too. With the control plane stopped, reads and writes
through the app and fresh Postgres connections (Flycast 5432, nearest member 5433)
keep working.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.cluster.ephemeral import ephemeral_cluster, run_cli
from ferry.cluster.settings import ClusterSettings
from ferry.postgres.image import default_cache_dir
from tests.e2e.conftest import REPO, cluster_pid, until

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "examples" / "pg-replay"
APP = "pg-replay"
DB = "notesdb"
PSQL = "/usr/lib/postgresql/15/bin/psql"


@pytest.fixture(scope="module", autouse=True)
def apps_of_the_module_are_deleted() -> Iterator[None]:
    """This module's cluster is its own and purged at the end: the shared one is not used."""
    yield


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSettings]:
    with ephemeral_cluster(("ams", "sin"), octet=198) as settings:
        yield settings


def ferry(cluster: ClusterSettings, *args: str, cwd: Path | None = None) -> str:
    done = run_cli(cluster, *args, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def request(cluster: ClusterSettings, region: str, method: str, path: str, body: str = "") -> Any:
    """``method path`` from a client in ``region``, through that region's edge; returns
    (status, JSON answer). Runs in the region's namespace directly (no control plane)."""
    argv = ["curl", "-s", "-m", "10", "-X", method, "-w", "\n%{http_code}"]
    if body:
        argv += ["--data-binary", body]
    netns = cluster.plan.region(region).netns
    argv = ["ip", "netns", "exec", netns, *argv, f"http://{APP}.ferry.test{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    text, _, status = done.stdout.rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status or 0), {"unparsed": done.stdout + done.stderr}


def timed(
    cluster: ClusterSettings, region: str, method: str, path: str, n: int, body: str = ""
) -> list[tuple[int, dict[str, Any], float]]:
    """``n`` requests over one keep-alive connection from ``region``; (status, JSON
    answer, seconds as curl measured them) each."""
    argv = ["curl", "-s", "-m", "20", "-X", method, *(["--data-binary", body] if body else [])]
    argv += [f"http://{APP}.ferry.test{path}", "-w", "\n@@%{http_code} %{time_total}\n"] * n
    netns = cluster.plan.region(region).netns
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=60
    )
    # body1 \n@@code seconds\n body2 \n@@code seconds\n …
    parts = done.stdout.split("\n@@")
    results = []
    for i in range(1, len(parts)):
        status, seconds = parts[i].partition("\n")[0].split()
        body_text = parts[0] if i == 1 else parts[i - 1].partition("\n")[2]
        results.append((int(status), json.loads(body_text), float(seconds)))
    assert len(results) == n, done.stdout + done.stderr
    return results


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


@pytest.fixture(scope="module")
def database(cluster: ClusterSettings) -> list[dict[str, Any]]:
    """``notesdb``: primary in ams, a streaming replica in sin."""
    started = time.monotonic()
    ferry(cluster, "postgres", "create", "--name", DB, "--region", "ams", "--replicas", "sin")
    print(f"ferry postgres create ams + sin: {time.monotonic() - started:.1f} s")

    def streaming() -> list[dict[str, Any]] | None:
        rows = json.loads(ferry(cluster, "postgres", "status", DB, "--json"))
        roles = {(r["region"], r["role"], r["state"]) for r in rows}
        ok = ("ams", "primary", "running") in roles and any(
            region == "sin" and role == "replica" and state in ("running", "streaming")
            for region, role, state in roles
        )
        return rows if ok else None

    return list(until("a primary in ams and a streaming replica in sin", streaming, 90))


@pytest.fixture(scope="module")
def base_copy_removed() -> Iterator[Path]:
    """The Postgres image's layout; buildah's copy of it (named after its path) is removed
    from buildah's storage at the end, as it was made by this module's build."""
    layout = default_cache_dir() / "layout"
    yield layout
    subprocess.run(["buildah", "rmi", f"localhost{layout}"], capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def app(
    cluster: ClusterSettings,
    database: list[dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
    base_copy_removed: Path,
) -> dict[str, dict[str, Any]]:
    """The example, deployed from a copy of the repo's directory as a user would, and
    attached; its started machine per region."""
    app_dir = tmp_path_factory.mktemp("example") / "pg-replay"
    shutil.copytree(EXAMPLE, app_dir)
    layout = base_copy_removed
    if layout != Path("/var/cache/ferry/postgres/layout"):  # the Dockerfile's default
        with (app_dir / "fly.toml").open("a") as toml:
            toml.write(f'\n[build.args]\n  PG_IMAGE = "oci:{layout}"\n')
    started = time.monotonic()
    ferry(cluster, "deploy", "--regions", "ams,sin", cwd=app_dir)
    print(
        f"ferry deploy of the example (build, push, 2 machines): {time.monotonic() - started:.1f} s"
    )
    # Before the attach the app answers, and says what is missing.
    status, answer = request(cluster, "sin", "GET", "/notes")
    assert status == 503 and "ferry postgres attach" in answer["error"], answer
    attached = ferry(cluster, "postgres", "attach", DB, "-a", APP)
    assert "user app_pg_replay" in attached  # pg_* role names are Postgres'

    def attached_everywhere() -> bool:
        """Each region's machine answers it (the attach rolled them: one that is still
        restarting is covered by the other region's)."""
        for region in ("ams", "sin"):
            status, answer = request(cluster, region, "GET", "/notes")
            if status != 200 or answer.get("served_by", {}).get("region") != region:
                return False
        return True

    until("the example answers in ams and sin, each from its own region", attached_everywhere, 90)
    machines = json.loads(ferry(cluster, "machine", "list", "-a", APP, "--json"))
    return {m["region"]: m for m in machines if m["state"] == "started"}


def test_a_read_in_sin_is_served_by_the_sin_replica(
    cluster: ClusterSettings, database: list[dict[str, Any]], app: dict[str, dict[str, Any]]
) -> None:
    status, answer = request(cluster, "sin", "GET", "/notes")
    assert status == 200, answer
    assert answer["served_by"] == {
        "region": "sin",
        "machine": app["sin"]["id"],
        "replayed_from": None,
    }
    sin_member = next(r["name"] for r in database if r["region"] == "sin")
    assert answer["database"]["machine"] == sin_member
    assert (answer["database"]["region"], answer["database"]["role"]) == ("sin", "replica")
    # In ams, the nearest member is the primary itself.
    status, answer = request(cluster, "ams", "GET", "/notes")
    assert (answer["served_by"]["region"], answer["database"]["region"]) == ("ams", "ams")
    assert answer["database"]["role"] == "primary"


def test_a_write_in_sin_is_replayed_to_ams_and_then_readable_in_sin(
    cluster: ClusterSettings, app: dict[str, dict[str, Any]]
) -> None:
    started = time.monotonic()
    status, written = request(cluster, "sin", "POST", "/notes", "hello from sin")
    print(f"a write from sin, replayed to ams: {time.monotonic() - started:.2f} s")
    assert status == 201, written  # the client never sees the Fly-Replay answer
    assert written["served_by"] == {
        "region": "ams",
        "machine": app["ams"]["id"],
        "replayed_from": "sin",
    }
    assert (written["database"]["region"], written["database"]["role"]) == ("ams", "primary")

    status, read = request(cluster, "sin", "GET", written["read_it"])  # /notes?after=<lsn>
    assert status == 200 and read["caught_up"] is True, read
    assert (read["served_by"]["region"], read["database"]["role"]) == ("sin", "replica")
    note = next(n for n in read["notes"] if n["id"] == written["id"])
    assert (note["body"], note["sent_from"]) == ("hello from sin", "sin")

    # Deleting is a write too: replayed, and gone from the sin replica afterwards.
    status, deleted = request(cluster, "sin", "DELETE", f"/notes/{written['id']}")
    assert status == 200 and deleted["served_by"]["region"] == "ams", deleted
    status, read = request(cluster, "sin", "GET", f"/notes?after={deleted['lsn']}")
    assert written["id"] not in {n["id"] for n in read["notes"]}
    # Bad input is the app's own 400, answered in the primary region.
    status, refused = request(cluster, "sin", "POST", "/notes", " ")
    assert status == 400 and "1 to 1000 characters" in refused["error"], refused


def test_a_write_hidden_in_a_get_is_refused_by_the_replica_and_replayed(
    cluster: ClusterSettings, app: dict[str, dict[str, Any]]
) -> None:
    # The tables exist on the sin replica once a first write in ams has reached it.
    status, written = request(cluster, "ams", "POST", "/notes", "written in ams")
    assert status == 201 and written["served_by"]["replayed_from"] is None, written
    assert request(cluster, "sin", "GET", written["read_it"])[1]["caught_up"] is True
    # Asked directly (not through the edge), the sin machine shows what the edge gets:
    # its replica refused the write (read-only), so it answers with Fly-Replay.
    sin = app["sin"]
    raw = in_machine_network(
        cluster, sin, "curl", "-s", "-i", "-m", "10", f"http://[{sin['private_ip']}]:8080/hits"
    ).stdout
    assert "409" in raw.splitlines()[0] and "Fly-Replay: region=ams" in raw, raw
    assert "read-only (25006)" in raw, raw
    # Through the edge the client gets the answer from ams.
    status, counted = request(cluster, "sin", "GET", "/hits")
    assert status == 200, counted
    assert (
        counted["served_by"]["region"] == "ams" and counted["served_by"]["replayed_from"] == "sin"
    )
    assert counted["database"]["role"] == "primary" and counted["hits"] >= 1


def test_reads_stay_in_sin_and_writes_cross_the_wan_once(
    cluster: ClusterSettings, app: dict[str, dict[str, Any]]
) -> None:
    rtt = cluster.latency.rtt_ms("ams", "sin") / 1000
    bare = timed(cluster, "sin", "GET", "/healthz", 8)  # the app without its database
    reads = timed(cluster, "sin", "GET", "/notes", 8)
    writes = timed(cluster, "sin", "POST", "/notes", 5, body="timed from sin")
    assert all(a["database"]["region"] == "sin" for _, a, _ in reads), reads
    assert all(a["served_by"]["region"] == "ams" for _, a, _ in writes), writes
    read_p50 = statistics.median(seconds for _, _, seconds in reads[1:])  # connection made
    write_p50 = statistics.median(seconds for _, _, seconds in writes[1:])
    bare_p50 = statistics.median(seconds for _, _, seconds in bare[1:])
    print(f"from sin: /healthz (no SQL) p50 {bare_p50 * 1000:.1f} ms")
    figures = f"read p50 {read_p50 * 1000:.1f} ms (sin replica), write p50 "
    print(f"from sin: {figures}{write_p50 * 1000:.1f} ms (replayed to ams), RTT {rtt:.3f} s")
    assert read_p50 < rtt <= write_p50  # reads never cross the WAN; writes do, once or more


@pytest.fixture
def control_plane_stopped(cluster: ClusterSettings) -> Iterator[int]:
    pid = cluster_pid(cluster, "server")
    assert pid is not None, "no control plane process of this cluster"
    os.kill(pid, signal.SIGSTOP)  # unreachable: accepts nothing, answers nothing
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)  # never leave it stopped, also when the test fails


@pytest.fixture(scope="module")
def database_url(cluster: ClusterSettings, app: dict[str, dict[str, Any]]) -> str:
    """The example's DATABASE_URL, as its sin machine sees it (asked while the control
    plane is up: `ssh console` goes through it)."""
    argv = ("ssh", "console", "-a", APP, "--machine", app["sin"]["id"])
    url = ferry(cluster, *argv, "-C", "sh -c 'echo $DATABASE_URL'").strip()
    assert url.startswith("postgres://app_pg_replay:"), "DATABASE_URL is not the attach's"
    assert url.endswith(f"@{DB}.flycast:5432/app_pg_replay")
    return url


def test_reads_and_writes_go_on_while_the_control_plane_is_down(
    cluster: ClusterSettings,
    app: dict[str, dict[str, Any]],
    database_url: str,
    control_plane_stopped: int,
) -> None:
    api = subprocess.run(["curl", "-s", "-m", "2", cluster.api_url], capture_output=True)
    assert api.returncode == 28  # the control plane answers nothing (curl's timeout)

    status, read = request(cluster, "sin", "GET", "/notes")
    assert status == 200 and read["database"]["region"] == "sin", read
    status, written = request(cluster, "sin", "POST", "/notes", "while the control plane sleeps")
    assert status == 201, written
    assert written["served_by"]["region"] == "ams" and written["database"]["role"] == "primary"
    status, read = request(cluster, "sin", "GET", written["read_it"])
    assert read["caught_up"] and written["id"] in {n["id"] for n in read["notes"]}, read

    # Fresh connections from the sin machine's network, as a new process of the app would
    # make them: Flycast 5432 (the sin edge, then a member's forwarder) reaches the primary;
    # the nearest member's 5433 is the sin replica. Names from the host's resolver.
    sin = app["sin"]
    query = f"select pg_is_in_recovery(), count(*) > 0 from notes where id = {written['id']}"
    primary = in_machine_network(cluster, sin, PSQL, database_url, "-tAc", query)
    assert primary.stdout.strip() == "f|t", primary.stderr
    nearest_url = database_url.replace(
        f"@{DB}.flycast:5432/", f"@top1.nearest.of.{DB}.internal:5433/"
    )
    nearest = in_machine_network(cluster, sin, PSQL, nearest_url, "-tAc", query)
    assert nearest.stdout.strip() == "t|t", nearest.stderr
