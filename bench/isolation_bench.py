"""Benchmark: what the isolation ruleset costs traffic between two machines of one org.

Run (as root)::

    PYTHONPATH=. /work/main/.venv/bin/python bench/isolation_bench.py [--rounds 3
        --seconds 4 --round-trips 5000 --mode bridged|routed]

The lab of ``tests/integration/net/isolation_lab.py`` (a host namespace, machines
a1 and a2 of org A and b1 of org B on veths, 6PN /112s routed by the host),
and a1 -> a2 over 6PN, through the host's forward path, under three setups:

- ``none``: no ruleset in the host namespace (no conntrack either);
- ``conntrack``: only ``ct state established,related accept`` in forward: what
  any stateful firewall pays (conntrack on every packet), to tell it from the rules';
- ``ruleset``: the host's isolation ruleset (3 machines, 2 organizations);
- ``ruleset-400``: the same plus 400 more machines in 200 more organizations in
  its sets (their veths do not exist): the rules a packet meets are the same,
  only the sets are larger — per-packet cost should not move.

Throughput: ``iperf3 -c`` for ``--seconds`` (one TCP stream, a2 runs ``iperf3 -s``).
Latency: ``--round-trips`` 1-byte request/response exchanges on one TCP
connection (TCP_NODELAY), p50/p99 in microseconds, TCP_RR-like. Rounds
interleave the setups so load drifts hit all alike; medians are printed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferry.net import isolation, sixpn
from ferry.net.nftables import apply_isolation, apply_ruleset, remove_ruleset
from tests.integration.net.isolation_lab import PROBE, Lab

IPERF_PORT, ECHO_PORT = 5201, 6001
CONNTRACK_ONLY = (
    "table inet ferry_bench_ct {}\ndelete table inet ferry_bench_ct\n"
    "table inet ferry_bench_ct {\n  chain forward {\n"
    "    type filter hook forward priority filter; policy accept;\n"
    "    ct state established,related accept\n  }\n}\n"
)
"""Conntrack alone (what any stateful firewall pays), to tell its cost from the rules'."""
NO_CONNTRACK = "table inet ferry_bench_ct {}\ndelete table inet ferry_bench_ct\n"


def crowded(lab: Lab, extra: int) -> isolation.HostIsolation:
    """The lab's host plus ``extra`` machines (two per organization) in its sets."""
    base = lab.isolation()
    start = int(ipaddress.IPv4Address(f"10.{lab.octet}.100.0"))
    more = tuple(
        isolation.MachinePort(
            veth=f"x{n}",
            ipv4=ipaddress.IPv4Address(start + n),
            sixpn=sixpn.machine_address(0x100 + n // 2, 1, 10 + n),
            network=0x100 + n // 2,
        )
        for n in range(extra)
    )
    return isolation.HostIsolation(
        machines=base.machines + more,
        mesh_interfaces=base.mesh_interfaces,
        bridge=base.bridge,
        edge_sources=base.edge_sources,
        protected=base.protected,
    )


def throughput(lab: Lab, seconds: float) -> float:
    """Gbit/s a1 -> a2 over 6PN, one iperf3 TCP stream."""
    a2 = lab.machine("a2").sixpn
    argv = [
        "ip",
        "netns",
        "exec",
        lab.ns("a1"),
        "iperf3",
        "-6",
        "-c",
        str(a2),
        "-p",
        str(IPERF_PORT),
    ]
    argv += ["-t", f"{seconds:g}", "-J"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 20)
    report = json.loads(out.stdout)
    return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9


def round_trips(lab: Lab, count: int) -> list[int]:
    """Microseconds per 1-byte request/response, a1 -> a2 over 6PN."""
    a2 = lab.machine("a2").sixpn
    out = lab.run("a1", "rr", str(a2), str(ECHO_PORT), str(count))
    return [int(line) for line in out.splitlines()]


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--mode", choices=["bridged", "routed"], default="bridged")
    args = parser.parse_args()
    if not 0 < args.seconds <= 5:
        parser.error("--seconds must be in (0, 5]")
    lab = Lab(mode=args.mode)
    setups: dict[str, isolation.HostIsolation | str | None] = {
        "none": None,
        "conntrack": CONNTRACK_ONLY,
        "ruleset": lab.isolation(),
        "ruleset-400": crowded(lab, 400),
    }
    results: dict[str, dict[str, list[float]]] = {
        name: {"gbps": [], "p50": [], "p99": []} for name in setups
    }
    try:
        lab.build(Path(tempfile.mkdtemp(prefix="isolation-bench-")))
        a2 = str(lab.machine("a2").sixpn)
        iperf = ["ip", "netns", "exec", lab.ns("a2"), "iperf3", "-s", "-B", a2]
        lab.start([*iperf, "-p", str(IPERF_PORT), "--forceflush"], ready="Server listening")
        lab.start(
            [
                "ip",
                "netns",
                "exec",
                lab.ns("a2"),
                sys.executable,
                PROBE,
                "echo",
                f"[{a2}]:{ECHO_PORT}",
            ]
        )
        for round_number in range(1, args.rounds + 1):
            for name, host in setups.items():
                remove_ruleset(lab.ns("h"))
                apply_ruleset(
                    lab.ns("h"), CONNTRACK_ONLY if host == CONNTRACK_ONLY else NO_CONNTRACK
                )
                if isinstance(host, isolation.HostIsolation):
                    apply_isolation(lab.ns("h"), host)
                round_trips(lab, 200)  # warm: neighbours, conntrack, caches
                times = round_trips(lab, args.round_trips)
                results[name]["p50"].append(percentile(times, 0.50))
                results[name]["p99"].append(percentile(times, 0.99))
                results[name]["gbps"].append(throughput(lab, args.seconds))
                got = {key: values[-1] for key, values in results[name].items()}
                print(
                    f"round {round_number} {name:12s} {got['gbps']:6.2f} Gbit/s"
                    f"  rr p50 {got['p50']:5.0f} us  p99 {got['p99']:5.0f} us",
                    flush=True,
                )
    finally:
        lab.teardown()
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, mode {args.mode}, "
        f"{args.rounds} rounds, iperf3 {args.seconds:g} s, {args.round_trips} round trips"
    )
    print("| setup | throughput (Gbit/s, median) | vs none | RR p50 (us) | RR p99 (us) |")
    print("|---|---|---|---|---|")
    base = statistics.median(results["none"]["gbps"])
    for name, figures in results.items():
        gbps = statistics.median(figures["gbps"])
        print(
            f"| {name} | {gbps:.2f} | {gbps / base:.2f}x | "
            f"{statistics.median(figures['p50']):.0f} | {statistics.median(figures['p99']):.0f} |"
        )


if __name__ == "__main__":
    main()
