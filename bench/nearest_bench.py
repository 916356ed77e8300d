"""Nearest routing across the emulated WAN: per client region, p50/p99 through the edge.

Run as root: ``.venv/bin/python bench/nearest_bench.py [--count 200]``.

A three-region embedded cluster (ams, iad, sin; WAN RTTs from the measured
matrix: ams-iad 84, ams-sin 169, iad-sin 224 ms). App `everywhere` runs one
machine per region, app `amsonly` one machine in ams. From a client in each
region: sequential keep-alive GETs through the region's edge
(`http://<app>.ferry.test/`), and, as the in-region baseline, straight to
the region's own machine (no proxy), each GET on a connection opened before
its clock starts, as keep-alive would (busybox httpd closes every
connection, so a plain baseline would also pay a TCP handshake). Reports p50/p99, the share served
in-region, and for `amsonly` the p50 next to the region's RTT to ams.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings

REGIONS = ("ams", "iad", "sin")
CLIENT = Path(__file__).with_name("_regional_client.py")


def run_client(
    settings: ClusterSettings, region: str, url: str, count: int, *, opened: bool = False
) -> dict[str, object]:
    argv = ["ip", "netns", "exec", settings.plan.region(region).netns,
            sys.executable, str(CLIENT), url, str(count)]  # fmt: skip
    if opened:
        argv.append("opened")
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout
    return dict(json.loads(out))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def deploy(settings: ClusterSettings, app_dir: Path, app: str, regions: str) -> None:
    toml = (app_dir / "fly.toml").read_text()
    (app_dir / "fly.toml").write_text(toml.replace('app = "hello"', f'app = "{app}"'))
    ferry_cli(settings, "deploy", "--regions", regions, cwd=app_dir)
    (app_dir / "fly.toml").write_text(toml)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--far-count", type=int, default=40)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    rows = []
    try:
        with ephemeral_cluster(REGIONS, octet=192) as settings:
            deploy(settings, app_dir, "everywhere", ",".join(REGIONS))
            deploy(settings, app_dir, "amsonly", "ams")
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                ips = {m.region: m.host_ip for m in client.list_machines("everywhere")}
            for region in REGIONS:
                url = f"http://{ips[region]}:8080/"
                base = run_client(settings, region, url, args.count, opened=True)
                edge = run_client(settings, region, "http://everywhere.ferry.test/", args.count)
                far = run_client(settings, region, "http://amsonly.ferry.test/", args.far_count)
                rows.append((region, base, edge, far, settings.latency.rtt_ms(region, "ams")))
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    print(
        f"conditions: {os.cpu_count()} cores, regions {', '.join(REGIONS)} (1 host each), "
        f"demo app (busybox httpd CGI), sequential keep-alive GETs (baseline: each on a "
        f"connection opened before its clock starts), "
        f"{args.count} per region ({args.far_count} for amsonly)"
    )
    print(
        f"{'client':<7}{'baseline p50/p99':>20}{'edge p50/p99':>18}{'delta p50':>11}"
        f"{'in-region':>11}{'amsonly p50/p99':>20}{'RTT to ams':>12}"
    )
    for region, base, edge, far, rtt in rows:
        b, e, f = base["latencies_ms"], edge["latencies_ms"], far["latencies_ms"]
        served = edge["regions"]
        in_region = 100 * served.get(region, 0) / max(1, sum(served.values()))
        print(
            f"{region:<7}{statistics.median(b):9.2f} /{pct(b, 0.99):7.2f} ms"
            f"{statistics.median(e):8.2f} /{pct(e, 0.99):7.2f} ms"
            f"{statistics.median(e) - statistics.median(b):+9.2f}ms"
            f"{in_region:10.1f}%"
            f"{statistics.median(f):9.1f} /{pct(f, 0.99):7.1f} ms"
            f"{rtt:10.0f}ms"
        )
    print(
        "goals: >= 99% in-region and p50 within 2 ms of baseline with the app everywhere; "
        "amsonly p50 from sin ~ the sin-ams RTT"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
