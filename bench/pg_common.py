"""Shared by the Postgres benchmarks (bench/pg_bench.py, bench/pg_create.py): a database
made with the CLI as a user makes it, commands run in a machine's network namespace,
psql/pgbench on this host.

The host's PostgreSQL 15 client tools (``/usr/lib/postgresql/15/bin``) run inside a
machine's network namespace (``ip netns exec``), with the machine's resolv.conf, as
``tests/e2e/test_postgres.py``'s ``in_machine_network`` does: the path a process in
that machine takes, without its CPU limit (the load generator is not what is measured).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._cluster import ferry_cli
from ferry.cluster.settings import ClusterSettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = str(PG_BIN / "psql")
PGBENCH = str(PG_BIN / "pgbench")
OCTET = 197  # this benchmark's cluster network (10.197.0.0/16): one cluster at a time


@dataclass(frozen=True)
class Member:
    id: str
    region: str
    private_ip: str
    host_id: str


@dataclass(frozen=True)
class Database:
    """A Postgres cluster made by ``ferry postgres create``: its members and the
    ``postgres`` user's password (printed once by ``--show-credentials``)."""

    name: str
    password: str
    members: tuple[Member, ...]
    create_seconds: float

    def member(self, region: str) -> Member:
        return next(m for m in self.members if m.region == region)


def create_database(
    settings: ClusterSettings, name: str, region: str, replicas: Sequence[str] = ()
) -> Database:
    """``ferry postgres create`` timed from the client side (the CLI process, start to exit)."""
    argv = ["postgres", "create", "--name", name, "--region", region, "--show-credentials"]
    if replicas:
        argv += ["--replicas", ",".join(replicas)]
    started = time.monotonic()
    out = ferry_cli(settings, *argv)
    seconds = time.monotonic() - started
    found = re.search(r"^\s*Password\s+(\S+)", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no password in the output of create:\n{out}")
    listed = json.loads(ferry_cli(settings, "machine", "list", "-a", name, "--json"))
    members = tuple(Member(m["id"], m["region"], m["private_ip"], m["host_id"]) for m in listed)
    return Database(name, found.group(1), members, seconds)


def destroy_database(settings: ClusterSettings, name: str) -> None:
    ferry_cli(settings, "postgres", "destroy", name, "--yes")


def primary_id(settings: ClusterSettings, name: str) -> str:
    rows = json.loads(ferry_cli(settings, "postgres", "status", name, "--json"))
    return str(next(r["name"] for r in rows if r["role"] == "primary"))


def netns_of(settings: ClusterSettings, machine_id: str) -> str:
    return f"{settings.prefix}-vm-{machine_id}"


@contextlib.contextmanager
def machine_resolver(settings: ClusterSettings, machine_id: str, host_id: str) -> Iterator[str]:
    """The machine's netns name, with its resolv.conf in /etc/netns for ``ip netns exec``
    (removed on exit)."""
    netns = netns_of(settings, machine_id)
    etc = Path("/etc/netns") / netns
    etc.mkdir(parents=True, exist_ok=True)
    shutil.copy(settings.host_dir(host_id) / "resolv.conf", etc / "resolv.conf")
    try:
        yield netns
    finally:
        shutil.rmtree(etc, ignore_errors=True)


def in_netns(netns: str, argv: Sequence[str], password: str, timeout: float) -> str:
    """Run ``argv`` in ``netns`` with ``PGPASSWORD`` in its environment (never on its
    command line); return stdout, raise with stderr on failure."""
    env = {**os.environ, "PGPASSWORD": password}
    done = subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} in {netns} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def resolve(netns: str, name: str) -> str:
    """``name``'s first address as the machine's resolver answers it."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "getent", "ahosts", name],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return out.split()[0]


def conninfo(host: str, port: int, database: str = "postgres") -> list[str]:
    return ["-h", host, "-p", str(port), "-U", "postgres", database]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def forwarder_pid(netns: str) -> int | None:
    """The pid (on this host) of the 5432 forwarder running in the machine ``netns``."""
    want = os.stat(f"/run/netns/{netns}").st_ino
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"ferry.postgres.primary_proxy" not in cmdline:
                continue
            if os.stat(entry / "ns" / "net").st_ino == want:
                return int(entry.name)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def conditions(settings: ClusterSettings, extra: dict[str, Any]) -> list[str]:
    lat = settings.latency
    rtts = ", ".join(
        f"{a}-{b} {lat.rtt_ms(a, b):.0f} ms"
        for i, a in enumerate(settings.regions)
        for b in settings.regions[i + 1 :]
    )
    lines = [
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs,"
        f" load average {load_average()}",
        f"emulated WAN RTT: {rtts}",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return lines


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_of(pid: int) -> str:
    """The cgroup (v1 ``cpuacct`` hierarchy) of ``pid``: a machine's, for a process in it."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            return path
    raise RuntimeError(f"process {pid} has no cpuacct cgroup (cgroup v1 expected)")


def cgroup_cpu(path: str) -> tuple[float, int, int]:
    """(CPU seconds used, CFS periods, periods throttled) of the cgroup ``path`` so far."""
    used = int((CGROUP_ROOT / "cpuacct" / path.strip("/") / "cpuacct.usage").read_text())
    stat = dict(
        line.split()
        for line in (CGROUP_ROOT / "cpu" / path.strip("/") / "cpu.stat").read_text().splitlines()
    )
    return used / 1e9, int(stat["nr_periods"]), int(stat["nr_throttled"])
