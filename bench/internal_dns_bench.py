"""``.internal`` lookup latency: p50/p99 from a client namespace to fdaa::3:53.

Run as root: ``.venv/bin/python bench/internal_dns_bench.py [--count 2000]``.

Builds two namespaces (``tests/dns_netns.py``): a host namespace with fdaa::3 on
its loopback, running ``python -m ferry.net.dns_server`` as its own process
(plain asyncio loop) from a records copy on disk, and a client namespace joined
by a veth, holding a machine's 6PN address. The records are a busy host's:
``--orgs`` organizations of ``--apps`` apps of ``--machines`` machines each,
spread over four regions, ranked by the default latency matrix. The client asks
sequentially (one query in flight), rotating through the name forms a machine
uses (app, region, top2.nearest.of, vm, process, vms TXT, _apps TXT) of every
app, over a connected UDP socket, and times send → reply. The first round of
each question is reported apart (the server builds and renders the answer; as
after every records update) from repeats (its rendered-answer cache). Every
reply is checked (id, NOERROR, an answer). The issue's goal: p50 ≤ 1 ms,
p99 ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ferry.net import sixpn  # noqa: E402
from ferry.net.dns_server import save_records  # noqa: E402
from ferry.net.internal_records import InternalRecords, MachineRecord  # noqa: E402
from ferry.net.latency import LatencyMatrix  # noqa: E402
from tests.dns_netns import DnsNamespaces, thread_in  # noqa: E402

REGIONS = ("ams", "fra", "sin", "iad")
MAX_COUNT = 20_000
REPLY_TIMEOUT_S = 1.0


def host_records(orgs: int, apps: int, machines: int) -> InternalRecords:
    built: list[MachineRecord] = []
    for org in range(1, orgs + 1):
        for app in range(apps):
            for n in range(machines):
                number = app * machines + n + 1
                built.append(
                    MachineRecord(
                        id=f"m{org}x{app}x{n}",
                        app=f"app{org}x{app}",
                        network=org,
                        region=REGIONS[n % len(REGIONS)],
                        process_group="app" if n % 3 else "worker",
                        address=sixpn.machine_address(org, 1, number),
                        started=n % 5 != 4,
                        metadata={"role": "primary" if n == 0 else "replica"},
                    )
                )
    return InternalRecords.from_latency(LatencyMatrix.default().median, machines=built)


def questions(apps: int) -> list[tuple[str, str]]:
    asked: list[tuple[str, str]] = []
    for app in range(apps):
        name = f"app1x{app}.internal"
        asked += [
            (name, "AAAA"),
            (f"ams.{name}", "AAAA"),
            (f"top2.nearest.of.{name}", "AAAA"),
            (f"m1x{app}x1.vm.{name}", "AAAA"),
            (f"app.process.{name}", "AAAA"),
            (f"vms.{name}", "TXT"),
            ("_apps.internal", "TXT"),
        ]
    return asked


def measure(
    source: str, asked: list[tuple[str, str]], count: int
) -> tuple[list[float], list[float], int]:
    """Times (ms) of ``count`` sequential queries from ``source``: first asks of a
    question (the server renders its answer) and repeats (served from its cache);
    and the number of failures."""
    wires = []
    for index in range(count):
        query = dns.message.make_query(*asked[index % len(asked)])
        query.id = index % 65536
        wires.append(query.to_wire())
    first: list[float] = []
    repeats: list[float] = []
    failures = 0
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.connect((str(sixpn.DNS_ADDRESS), 53))
        sock.settimeout(REPLY_TIMEOUT_S)
        warm_up = dns.message.make_query("warm-up.internal", "AAAA").to_wire()
        for _ in range(20):  # neighbour discovery, socket paths: not counted
            sock.send(warm_up)
            sock.recv(4096)
        for index, wire in enumerate(wires):
            began = time.perf_counter()
            sock.send(wire)
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                failures += 1
                continue
            (first if index < len(asked) else repeats).append((time.perf_counter() - began) * 1000)
            answers = int.from_bytes(reply[6:8], "big")
            if reply[:2] != wire[:2] or reply[3] & 0x0F or answers == 0:
                failures += 1
    return first, repeats, failures


def percentiles(times: list[float]) -> str:
    if len(times) < 2:
        return "n/a"
    cuts = statistics.quantiles(times, n=100)
    return f"p50 {cuts[49]:.3f} ms  p99 {cuts[98]:.3f} ms  max {max(times):.3f} ms"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--machines", type=int, default=10)
    args = parser.parse_args()
    count = max(1, min(args.count, MAX_COUNT))
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark makes network namespaces")
    records = host_records(args.orgs, args.apps, args.machines)
    asked = questions(args.apps)
    namespaces = DnsNamespaces("fdb")
    source = str(sixpn.machine_address(1, 2, 7))
    server = None
    try:
        namespaces.add_client_address(source)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "internal-dns.json"
            save_records(copy, records)
            argv = ["ip", "netns", "exec", namespaces.host, sys.executable, "-m"]
            argv += ["ferry.net.dns_server", "--records", str(copy), "--region", "ams"]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                sys.exit("the DNS server did not start")
            load = os.getloadavg()
            cpu_before = cpu_seconds(server.pid)
            with thread_in(namespaces.client) as client:
                first, repeats, failures = client.submit(measure, source, asked, count).result(
                    timeout=count * REPLY_TIMEOUT_S + 30
                )
            server_cpu_us = (cpu_seconds(server.pid) - cpu_before) / (count + 20) * 1e6
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        namespaces.close()
    times = first + repeats
    cuts = statistics.quantiles(times, n=100)
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, kernel {platform.release()}")
    print(f"load average before (other work on the machine): {' '.join(f'{x:.2f}' for x in load)}")
    print(f"records: {len(records.machines)} machines in {args.orgs} orgs x {args.apps} apps")
    print(f"server: python -m ferry.net.dns_server (uvloop), Python {platform.python_version()}")
    print(
        f"queries: {count} sequential over UDP from {source} to fdaa::3:53, "
        f"{len(asked)} distinct questions (7 name forms) asked in turn"
    )
    print(f"answered: {len(times)}, failures: {failures}")
    print(f"server CPU per query (user+system): {server_cpu_us:.0f} µs")
    print(f"first asks ({len(first)}): {percentiles(first)}")
    print(f"repeats ({len(repeats)}): {percentiles(repeats)}")
    print(f"all: {percentiles(times)}")
    met = {True: "met", False: "MISSED"}
    print(f"goal p50 <= 1 ms: {met[cuts[49] <= 1]}; p99 <= 5 ms: {met[cuts[98] <= 5]}")


if __name__ == "__main__":
    main()
