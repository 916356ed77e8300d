"""Unplanned failover: kill -9 of the primary's machine, time until a write through 5432
succeeds again, and acknowledged writes lost.

Run as root: ``.venv/bin/python bench/pg_failover.py [--runs 5] [--patroni-defaults]``.

An ephemeral three-region cluster (ams, iad, sin; the emulated WAN's RTTs), a
three-member database made as a user makes it (``ferry postgres create --sync``
through the API), the demo app deployed in iad and attached to it. A client in the
app machine's network namespace writes numbered rows through ``<db>.flycast:5432``
in a loop (one psql per row: connect, INSERT, commit acknowledged). Each run waits
until the cluster is whole (a primary, two streaming replicas, one synchronous),
then ``kill -9`` of the primary machine's init (``ferry.postgres.chaos``: every
process of the machine dies; the agent restarts it by its restart policy), and
measures from the kill until an INSERT begun after it is acknowledged. After the
last run every acknowledged id must be in the table.

``--patroni-defaults`` first sets Patroni's own timings (ttl 30, loop_wait 10,
retry_timeout 10, primary_start_timeout 300) through its REST API: the baseline
(with ``primary_start_timeout`` 300 the restarted primary keeps its key and Patroni
restarts it in place if it comes back before the key expires). ``--strict`` turns
``synchronous_mode_strict`` on (Ferry's ``--sync`` is Patroni's synchronous mode,
not strict: with strict the first commit after a failover also waits for a replica
to stream from the new primary).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Mapping

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings
from ferry.postgres import chaos
from ferry.postgres.chaos import Writer
from ferry.postgres.manage import cluster_members
from ferry.postgres.plan import FAILOVER_TIMINGS, MemberStatus

DB = "pgfo"
APP = "pgclient"
OCTET = 195
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "primary_start_timeout": 300}


def members(client: FerryClient) -> list[MemberStatus]:
    try:
        return cluster_members(client, DB)
    except Exception:  # a member restarting answers nothing: ask again
        return []


def whole(rows: list[MemberStatus], size: int) -> MemberStatus | None:
    """The primary when all ``size`` members run and a synchronous replica streams."""
    primary = [r for r in rows if r.role == "primary" and r.state == "running"]
    replicas = [r for r in rows if r.role != "primary" and r.state in ("running", "streaming")]
    timelines = {r.timeline for r in rows}
    synced = any(r.role == "sync replica" for r in replicas)
    if len(primary) == 1 and len(replicas) == size - 1 and synced and len(timelines) == 1:
        return primary[0]
    return None


def wait_whole(client: FerryClient, size: int, timeout: float) -> MemberStatus:
    deadline = time.monotonic() + timeout
    rows: list[MemberStatus] = []
    while time.monotonic() < deadline:
        rows = members(client)
        primary = whole(rows, size)
        if primary is not None:
            return primary
        time.sleep(0.5)  # each probe is an exec into a member; no need to spin
    raise RuntimeError(f"{DB} not whole within {timeout:.0f} s: {rows}")


def client_writer(settings: ClusterSettings, client: FerryClient) -> Writer:
    """Deploy the demo app as APP in iad, attach it, and a Writer in its machine's netns."""
    app_dir = demo_app_dir()
    try:
        toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{APP}"')
        toml = toml.replace('primary_region = "ams"', 'primary_region = "iad"')
        (app_dir / "fly.toml").write_text(toml)
        ferry_cli(settings, "deploy", cwd=app_dir)
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    ferry_cli(settings, "postgres", "attach", DB, "-a", APP)
    return chaos.writer_for_app(settings, client, APP)


def patch_config(client: FerryClient, change: Mapping[str, object]) -> None:
    """Change the cluster's dynamic configuration as an operator would: Patroni's
    ``PATCH /config`` on a member (every member applies it at its next cycle)."""
    member = next(m for m in client.list_machines(DB) if m.state.value == "started")
    script = (
        "import urllib.request as u, sys;"
        "u.urlopen(u.Request('http://[::1]:8008/config', data=sys.argv[1].encode(),"
        " method='PATCH', headers={'Content-Type': 'application/json'}), timeout=10)"
    )
    argv = ["/usr/bin/python3", "-c", script, json.dumps(change)]
    answer = client.exec_machine(DB, member.id, argv)
    if answer.exit_code != 0:
        raise RuntimeError(f"PATCH /config failed: {answer.stderr}")


def one_run(settings: ClusterSettings, client: FerryClient, writer: Writer) -> dict[str, object]:
    primary = wait_whole(client, 3, timeout=180)
    machine = next(m for m in client.list_machines(DB) if m.id == primary.name)
    wanted = len(writer.acknowledged()) + 5  # a few rows acknowledged by the old primary
    deadline = time.monotonic() + 60
    while len(writer.acknowledged()) < wanted and time.monotonic() < deadline:
        time.sleep(0.1)  # the writer thread appends; nothing to wait on but its list
    killed_at = time.monotonic()
    chaos.kill_machine(settings, machine.host_id, machine.id)
    seconds = writer.wait_for_write_after(killed_at, timeout=120)
    after = wait_whole(client, 3, timeout=180)
    region = next(m.region for m in client.list_machines(DB) if m.id == after.name)
    return {
        "killed": f"{machine.id} ({machine.region})",
        "new_primary": f"{after.name} ({region})",
        "seconds": seconds,
        "timeline": after.timeline,
        "whole_again_after": round(time.monotonic() - killed_at, 1),
        "load": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--patroni-defaults", action="store_true")
    parser.add_argument(
        "--strict", action="store_true", help="synchronous_mode_strict on (not Ferry's default)"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (namespaces, runc)", file=sys.stderr)
        return 2
    with ephemeral_cluster(("ams", "iad", "sin"), octet=OCTET) as settings:
        token = settings.token_path.read_text().strip()
        with FerryClient(settings.api_url, token) as client:
            began = time.monotonic()
            create = ("postgres", "create", "--name", DB, "--region", "ams")
            ferry_cli(settings, *create, "--replicas", "iad,sin", "--sync")
            print(f"create: {time.monotonic() - began:.1f} s", flush=True)
            if args.patroni_defaults:
                patch_config(client, PATRONI_DEFAULTS)
            if args.strict:
                patch_config(client, {"synchronous_mode_strict": True})
            writer = client_writer(settings, client)
            results = []
            try:
                writer.start()
                for run in range(args.runs):
                    result = one_run(settings, client, writer)
                    results.append(result)
                    print(f"run {run + 1}: {json.dumps(result)}", flush=True)
                writer.stop()
                acked = writer.acknowledged()
                lost = sorted(acked - writer.rows_present())
            finally:
                writer.close()
    times = [float(r["seconds"]) for r in results if r["seconds"] is not None]  # type: ignore[arg-type]
    ours = "/".join(FAILOVER_TIMINGS[k] for k in ("PG_TTL", "PG_LOOP_WAIT", "PG_RETRY_TIMEOUT"))
    timings = "Patroni's defaults 30/10/10" if args.patroni_defaults else f"Ferry's {ours}"
    print(f"conditions: {platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f};")
    sync = "--sync, synchronous_mode_strict" if args.strict else "--sync (not strict)"
    print(f"  regions ams,iad,sin (emulated WAN), {sync}, timings {timings}, writer in iad")
    print(f"seconds until a write through 5432 succeeds: {[round(t, 1) for t in times]}")
    if times:
        print(f"p50 {statistics.median(times):.1f} s, max {max(times):.1f} s")
    print(f"acknowledged writes: {len(acked)}, lost: {len(lost)} {lost[:20]}")
    return 0 if len(times) == args.runs and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
