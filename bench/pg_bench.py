"""Issue 15's pgbench figures on a real embedded cluster: port 5432 against direct
connections, and replica lag across the emulated WAN under load.

Run (as root, from the repository)::

    PYTHONPATH=$PWD .venv/bin/python bench/pg_bench.py \
        [--rounds 3 --seconds 8 --clients 4 --scale 10 --lag-seconds 30]

Starts one ephemeral cluster (ams, iad, sin; octet 197), deploys the demo app
``pgclient`` in ams (one machine: the client's network namespace) and makes the
database with ``ferry postgres create --name pgbench --region ams --replicas iad,sin``
(asynchronous replication). ``pgbench -i -s SCALE`` fills it; measuring starts
once both replicas have replayed it (within 1 MB). Then:

1. **Throughput** — pgbench from the client machine's namespace (host binary in
   its netns: its path, not its CPU limit) against the same server, the primary
   in ams, three ways: ``direct`` = the member's own Postgres, ``<6PN>:5433``;
   ``forwarder`` = the member's port 5432 (``ferry/postgres/primary_proxy.py``,
   which forwards to the primary: here itself); ``flycast`` = ``pgbench.flycast:5432``
   (the address resolved once in the netns: the region's edge sends the
   connection to the primary's own 5433, the member whose Patroni answers
   ``/primary``; with the primary on the edge's LAN its kernel forwards it,
   ``ferry.net.flycast_fast``, and when the primary is on the client's own host
   that host's kernel does, ``ferry.net.flycast_host``: the bench prints how
   many connections each did).
   Modes: ``select-only`` (``-S``), ``tpcb-like`` (pgbench's default script) and
   ``select-only -C`` (a new connection, SCRAM login included, per transaction).
   After an uncounted 5 s warm-up of each script (direct), ``--rounds`` rounds;
   in each, per mode, every way runs ``--seconds`` in all, in ``SLICES`` (4)
   turns of a share each, the three taking turns in an order rotated every
   turn (the machine's slow spells — tens of seconds after a ``-C`` block —
   fall on all three alike); the ratio of a way is its tps over ``direct``'s in
   the same round and mode. Less noisy than tps on a shared machine: the primary
   machine's CPU per transaction (``member µs/tx``, its cgroup's cpuacct: Postgres,
   the forwarder, Patroni, etcd) and ``CPU ratio`` = direct's over this way's, which
   is the throughput ratio when the member's CPU (its 1-CPU quota) is what limits;
   ``fwd µs/tx`` is the forwarder process's share; ``throttled`` the fraction of
   CFS periods in which the member used up its quota.
2. **Replica lag** — pgbench TPC-B-like on the primary (direct) for
   ``--lag-seconds`` while three samplers run, every 100 ms, each a psql session
   in a member's own namespace: on the primary ``pg_stat_replication``
   (``pg_current_wal_lsn() - replay_lsn`` in bytes and ``replay_lag``, which
   includes the standby's reply), on each replica
   ``clock_timestamp() - pg_last_xact_replay_timestamp()``. p50/p99 per replica,
   of the samples after the load's first ``WARMUP_S`` (3 s).

Prints every figure and the conditions. The cluster is removed at the end, also
on failure; every step is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._cluster import demo_app_dir, ferry_cli  # noqa: E402
from bench.pg_common import (  # noqa: E402
    OCTET,
    PGBENCH,
    PSQL,
    Database,
    cgroup_cpu,
    cgroup_of,
    conditions,
    conninfo,
    cpu_seconds,
    create_database,
    forwarder_pid,
    in_netns,
    machine_resolver,
    median,
    netns_of,
    percentile,
    primary_id,
    resolve,
)
from ferry.cluster.ephemeral import ephemeral_cluster  # noqa: E402
from ferry.cluster.settings import ClusterSettings  # noqa: E402

DB = "pgbench"
CLIENT_APP = "pgclient"
MODES = {"select-only": ["-S"], "tpcb-like": [], "select-only -C": ["-S", "-C"]}
SAMPLE_S = 0.1
WARMUP_RUN_S = 5  # an uncounted run of each of select-only and tpcb-like first
SLICES = 4  # each way's seconds of a round and mode, in this many turns (see throughput)
WARMUP_S = 3.0  # lag samples before this (after the load starts) are not counted


@dataclass
class Run:
    tps: float
    latency_ms: float
    transactions: int
    forwarder_us: float | None  # the forwarder's CPU per transaction, when it was on the path
    member_us: float  # the primary machine's CPU (its cgroup: Postgres + forwarder + …) per tx
    throttled: float  # fraction of its CFS periods in which its CPU quota was used up


@dataclass
class Tally:
    """One way's slices of a round and mode, added up."""

    busy_s: float = 0.0  # seconds spent in transactions (pgbench's count over its tps)
    latency_sum_ms: float = 0.0  # latency times transactions
    transactions: int = 0
    forwarder_s: float = 0.0
    member_s: float = 0.0
    periods: float = 0.0
    throttled: float = 0.0

    def run(self, counts_forwarder: bool) -> Run:
        done = max(self.transactions, 1)
        return Run(
            self.transactions / self.busy_s if self.busy_s else 0.0,
            self.latency_sum_ms / done,
            self.transactions,
            self.forwarder_s / done * 1e6 if counts_forwarder and self.transactions else None,
            self.member_s / done * 1e6,
            self.throttled / max(self.periods, 1),
        )


@dataclass
class Cell:
    runs: list[Run] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)  # direct's member CPU/tx over this


def pgbench(
    netns: str, db: Database, host: str, port: int, mode: list[str], clients: int, seconds: int
) -> tuple[float, float, int]:
    argv = [PGBENCH, "-n", *mode, "-c", str(clients), "-j", "2", "-T", str(seconds)]
    out = in_netns(netns, [*argv, *conninfo(host, port)], db.password, timeout=seconds + 60)
    tps = re.search(r"^tps = ([\d.]+)", out, re.MULTILINE)
    latency = re.search(r"^latency average = ([\d.]+) ms", out, re.MULTILINE)
    count = re.search(r"actually processed: (\d+)", out)
    if tps is None or latency is None or count is None:
        raise RuntimeError(f"unexpected pgbench output:\n{out}")
    return float(tps.group(1)), float(latency.group(1)), int(count.group(1))


def throughput(
    netns: str,
    db: Database,
    targets: dict[str, tuple[str, int]],
    forwarder: int,
    args: argparse.Namespace,
) -> dict[tuple[str, str], Cell]:
    """Each round and mode: every way for ``args.seconds`` in all, as ``SLICES`` runs of
    a share each, the ways taking turns (their order rotated every slice), so that a
    slow spell of the shared machine falls on every way alike."""
    cells = {(mode, way): Cell() for mode in MODES for way in targets}
    ways = list(targets)
    member = cgroup_of(forwarder)  # the forwarder runs in the primary machine's cgroup
    # Not counted: after pgbench -i the first run ran slower (cold caches, autovacuum).
    for flags in (["-S"], []):
        pgbench(netns, db, *targets["direct"], flags, args.clients, WARMUP_RUN_S)
    share = max(1, args.seconds // SLICES)
    for round_no in range(args.rounds):
        for mode, flags in MODES.items():
            tallies = {way: Tally() for way in ways}
            for slice_no in range(SLICES):
                turn = (round_no + slice_no) % len(ways)
                for way in ways[turn:] + ways[:turn]:
                    before, member_before = cpu_seconds(forwarder), cgroup_cpu(member)
                    tps, latency, count = pgbench(
                        netns, db, *targets[way], flags, args.clients, share
                    )
                    used, periods, throttled = (
                        a - b for a, b in zip(cgroup_cpu(member), member_before, strict=True)
                    )
                    tally = tallies[way]
                    tally.busy_s += count / tps if tps else share
                    tally.latency_sum_ms += latency * count
                    tally.transactions += count
                    tally.forwarder_s += cpu_seconds(forwarder) - before
                    tally.member_s += used
                    tally.periods += periods
                    tally.throttled += throttled
            tps_of: dict[str, float] = {}
            member_of: dict[str, float] = {}
            for way, tally in tallies.items():
                run = tally.run(counts_forwarder=way != "direct")
                cells[(mode, way)].runs.append(run)
                tps_of[way], member_of[way] = run.tps, run.member_us
                print(f"  round {round_no + 1} {mode:15} {way:10} {run.tps:9.0f} tps", flush=True)
            for way in ways:
                cells[(mode, way)].ratios.append(tps_of[way] / tps_of["direct"])
                cells[(mode, way)].cpu_ratios.append(member_of["direct"] / member_of[way])
    return cells


def throughput_report(cells: dict[tuple[str, str], Cell]) -> list[str]:
    lines = [
        f"{'mode':15} {'way':10} {'tps p50':>9} {'lat ms':>7} {'ratio p50':>9}"
        f" {'(min-max)':>12} {'member µs/tx':>12} {'CPU ratio':>9} {'fwd µs/tx':>9}"
        f" {'throttled':>9}"
    ]
    for (mode, way), cell in cells.items():
        spent = [r.forwarder_us for r in cell.runs if r.forwarder_us is not None]
        lines.append(
            f"{mode:15} {way:10} {median([r.tps for r in cell.runs]):9.0f}"
            f" {median([r.latency_ms for r in cell.runs]):7.2f}"
            f" {median(cell.ratios):9.2f}"
            f" {min(cell.ratios):5.2f}-{max(cell.ratios):5.2f}"
            f" {median([r.member_us for r in cell.runs]):12.1f}"
            f" {median(cell.cpu_ratios):9.2f}"
            f" {median(spent) if spent else float('nan'):9.1f}"
            f" {median([r.throttled for r in cell.runs]):9.0%}"
        )
    return lines


class Sampler(threading.Thread):
    """One psql session in a member's namespace, asked ``query`` every ``SAMPLE_S``
    (or as soon as its previous answer came); keeps ``(monotonic time, answer)``."""

    def __init__(self, netns: str, db: Database, host: str, query: str) -> None:
        super().__init__(daemon=True)
        argv = ["ip", "netns", "exec", netns, PSQL, "-X", "-q", "-tA", *conninfo(host, 5433)]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            env={"PGPASSWORD": db.password, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        self.query = query
        self.samples: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            tick = time.monotonic()
            self.proc.stdin.write(self.query + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
            if not answer:
                return  # psql ended
            self.samples.append((tick, answer.strip()))
            self.stop.wait(max(0.0, SAMPLE_S - (time.monotonic() - tick)))

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        self.proc.terminate()
        self.proc.wait(timeout=10)


PRIMARY_QUERY = (
    "select coalesce(string_agg(application_name || '=' ||"
    " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text, '') || '/' ||"
    " coalesce((extract(epoch from replay_lag) * 1000)::numeric(12, 1)::text, ''), ' '), '-')"
    " from pg_stat_replication;"
)
REPLICA_QUERY = (
    "select coalesce((extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp())"
    " * 1000)::numeric(12, 1)::text, '-');"
)


def replica_lag(
    settings: ClusterSettings, client_ns: str, db: Database, primary: str, seconds: int
) -> list[str]:
    members = {m.id: m for m in db.members}
    replicas = [m for m in db.members if m.id != primary]
    samplers = {
        "primary": Sampler(
            netns_of(settings, primary), db, members[primary].private_ip, PRIMARY_QUERY
        )
    }
    for m in replicas:
        samplers[m.id] = Sampler(netns_of(settings, m.id), db, m.private_ip, REPLICA_QUERY)
    for sampler in samplers.values():
        sampler.start()
    try:
        time.sleep(1.0)  # the samplers have logged in
        began = time.monotonic()
        tps, _, _ = pgbench(client_ns, db, members[primary].private_ip, 5433, [], 4, seconds)
        ended = time.monotonic()
    finally:
        for sampler in samplers.values():
            sampler.finish()
    # Until a replica has replayed the load's first commits it reports the time since
    # the last commit before the load (pgbench -i's): the first WARMUP_S are not counted.
    window = (began + WARMUP_S, ended)
    in_load = {
        k: [a for t, a in s.samples if window[0] <= t <= window[1]] for k, s in samplers.items()
    }
    bytes_of: dict[str, list[float]] = {m.id: [] for m in replicas}
    replay_of: dict[str, list[float]] = {m.id: [] for m in replicas}
    for answer in in_load["primary"]:
        for item in answer.split():
            name, _, values = item.partition("=")
            lag_bytes, _, lag_ms = values.partition("/")
            if name in bytes_of and lag_bytes:
                bytes_of[name].append(float(lag_bytes))
            if name in replay_of and lag_ms:
                replay_of[name].append(float(lag_ms))
    lines = [
        f"TPC-B-like on the primary ({members[primary].region}), 4 clients, {seconds} s:"
        f" {tps:.0f} tps; samples every {SAMPLE_S * 1000:.0f} ms after the first"
        f" {WARMUP_S:.0f} s ({len(in_load['primary'])} on the primary)",
        f"{'replica':9} {'RTT ms':>6} {'bytes p50':>10} {'p99':>10} {'replay_lag ms p50':>18}"
        f" {'p99':>7} {'replica now-replayed ms p50':>28} {'p99':>7} {'n':>4}",
    ]
    for m in replicas:
        own = [float(a) for a in in_load[m.id] if a not in ("", "-")]
        rtt = settings.latency.rtt_ms(members[primary].region, m.region)

        def pct(values: Sequence[float], q: float) -> str:
            return f"{percentile(values, q):.0f}" if values else "-"

        lines.append(
            f"{m.region:9} {rtt:6.0f}"
            f" {pct(bytes_of[m.id], 0.5):>10} {pct(bytes_of[m.id], 0.99):>10}"
            f" {pct(replay_of[m.id], 0.5):>18} {pct(replay_of[m.id], 0.99):>7}"
            f" {pct(own, 0.5):>28} {pct(own, 0.99):>7} {len(own):4}"
        )
    return lines


CATCH_UP_BYTES = 1 << 20
CATCH_UP_TIMEOUT_S = 300.0


def wait_caught_up(netns: str, db: Database, primary_ip: str) -> float:
    """Wait until both replicas have replayed all but ``CATCH_UP_BYTES`` of the primary's
    WAL (after ``pgbench -i``, shipping it across the WAN takes CPU: the mesh's
    wireguard-go and the delay line); returns the seconds waited."""
    query = (
        "select count(*) || ' ' || coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(),"
        " replay_lsn)), 0)::bigint from pg_stat_replication"
    )
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < CATCH_UP_TIMEOUT_S:
        argv = [PSQL, "-X", "-tA", "-c", query, *conninfo(primary_ip, 5433)]
        last = in_netns(netns, argv, db.password, timeout=30).strip()
        replicas, behind = (int(v) for v in last.split())
        if replicas == len(db.members) - 1 and behind <= CATCH_UP_BYTES:
            return time.monotonic() - started
        time.sleep(1.0)
    raise RuntimeError(f"replicas not caught up in {CATCH_UP_TIMEOUT_S:.0f} s: {last}")


def deploy_client(settings: ClusterSettings) -> dict[str, str]:
    app_dir = demo_app_dir()
    toml = (app_dir / "fly.toml").read_text().replace('app = "hello"', f'app = "{CLIENT_APP}"')
    (app_dir / "fly.toml").write_text(toml)
    ferry_cli(settings, "deploy", "--regions", "ams", cwd=app_dir)
    listed = json.loads(ferry_cli(settings, "machine", "list", "-a", CLIENT_APP, "--json"))
    return next(m for m in listed if m["state"] == "started")


def kernel_forwarded(prefix: str, where: str, table: str = "ferry_flycast_fast") -> int:
    """Connections a kernel forwarded: the region edge's (``where`` a region, ``table``
    ``ferry_flycast_fast``) or a host's (``where`` a host id, ``ferry_flycast_host``)."""
    chain = "to_machines" if table == "ferry_flycast_fast" else "to_local"
    shown = subprocess.run(
        ["ip", "netns", "exec", f"{prefix}-{where}",
         "nft", "list", "chain", "ip6", table, chain],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", shown.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--lag-seconds", type=int, default=30)
    parser.add_argument("--octet", type=int, default=OCTET)
    args = parser.parse_args()
    if (
        not 1 <= args.rounds <= 10
        or not 1 <= args.seconds <= 60
        or not 1 <= args.lag_seconds <= 120
    ):
        parser.error("--rounds 1..10, --seconds 1..60, --lag-seconds 1..120")
    with ephemeral_cluster(("ams", "iad", "sin"), octet=args.octet) as settings:
        client = deploy_client(settings)
        db = create_database(settings, DB, "ams", ("iad", "sin"))
        print(f"ferry postgres create (3 regions): {db.create_seconds:.1f} s", flush=True)
        primary = primary_id(settings, DB)
        host = next(m for m in db.members if m.id == primary)
        with machine_resolver(settings, client["id"], client["host_id"]) as netns:
            flycast = resolve(netns, f"{DB}.flycast")
            init = [PGBENCH, "-i", "-q", "-s", str(args.scale), *conninfo(host.private_ip, 5433)]
            in_netns(netns, init, db.password, timeout=300)
            caught_up = wait_caught_up(netns, db, host.private_ip)
            print(f"replicas caught up with pgbench -i in {caught_up:.1f} s", flush=True)
            targets = {
                "direct": (host.private_ip, 5433),
                "forwarder": (host.private_ip, 5432),
                "flycast": (flycast, 5432),
            }
            forwarder = forwarder_pid(netns_of(settings, primary))
            if forwarder is None:
                raise RuntimeError("no 5432 forwarder found in the primary's namespace")
            print("throughput:", flush=True)
            cells = throughput(netns, db, targets, forwarder, args)
            kernel = kernel_forwarded(settings.prefix, "ams")
            by_host = kernel_forwarded(settings.prefix, client["host_id"], "ferry_flycast_host")
            print("replica lag:", flush=True)
            lag = replica_lag(settings, netns, db, primary, args.lag_seconds)
        report = conditions(
            settings,
            {
                "database": f"{DB}: primary in {host.region}, replicas iad and sin (async),"
                f" 1 shared CPU / 512 MB each, pgbench scale {args.scale}",
                "client": f"pgbench -c {args.clients} -j 2 -T {args.seconds} from {CLIENT_APP}'s"
                f" machine netns in ams, {args.rounds} interleaved rounds",
                "ways": ", ".join(f"{k} {h}:{p}" for k, (h, p) in targets.items()),
                "flycast path": f"client on {client['host_id']}, primary on {host.host_id};"
                f" connections the ams edge's kernel forwarded: {kernel}"
                f" (ferry.net.flycast_fast), {client['host_id']}'s kernel: {by_host}"
                " (ferry.net.flycast_host); the rest were spliced by the edge process",
            },
        )
        print("\n".join(["", "== pgbench through 5432 against direct (5433)", *report]))
        print("\n".join(throughput_report(cells)))
        print("\n".join(["", "== replica lag under load", *lag]))


if __name__ == "__main__":
    main()
