"""A replayed day: demand follows the sun across ams, iad and sin, compressed to minutes.

Run as root: ``.venv/bin/python bench/diurnal_bench.py [--phase-seconds 20]``.

Three copies of the demo app in a three-region embedded cluster (emulated WAN):
`static` runs max_per_region (2) machines in every region all day, `static1`
one always-on machine per region (the least a fixed fleet can run); `elastic`
has an [autoscale] policy (0..2 per region, target concurrency 1, scale out
after 3 s, in after 5 s, idle stop after 5 s) and auto_stop_machines = "stop".
The same trace of clients (sequential GETs with a 20 ms pause, N per region
per phase) is replayed against each, one after the other. Reports
machine-seconds (started machines, sampled every second) and latency
percentiles, and the ratios elastic/static and elastic/static1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings

REGIONS = ("ams", "iad", "sin")
VERBOSE = "--verbose" in sys.argv
CLIENT = Path(__file__).with_name("_load_client.py")
# Clients per region in each phase: Asia's day, then Europe's, then the Americas'.
TRACE = (
    {"sin": 3},
    {"sin": 2, "ams": 2},
    {"ams": 3},
    {"ams": 2, "iad": 2},
    {"iad": 3},
    {"iad": 1, "sin": 1},
)
POLICY = """
[autoscale]
  regions = ["ams", "iad", "sin"]
  min_per_region = 0
  max_per_region = 2
  max_total = 6
  target_concurrency = 1
  scale_out_after = "3s"
  scale_in_after = "5s"
  stop_idle_after = "5s"
  destroy_after = "10m"
"""


def deploy(
    settings: ClusterSettings, app_dir: Path, app: str, elastic: bool, per_region: int = 2
) -> None:
    original = (app_dir / "fly.toml").read_text()
    toml = original.replace('app = "hello"', f'app = "{app}"')
    if elastic:
        toml = toml.replace('auto_stop_machines = "off"', 'auto_stop_machines = "stop"')
        toml = toml.replace("min_machines_running = 1", "min_machines_running = 0") + POLICY
    (app_dir / "fly.toml").write_text(toml)
    ferry_cli(settings, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
    (app_dir / "fly.toml").write_text(original)
    if not elastic and per_region > 1:
        for region in REGIONS:
            count = str(per_region)
            ferry_cli(settings, "scale", "count", count, "--region", region, "-a", app, "--yes")


def replay(
    settings: ClusterSettings, client: FerryClient, app: str, phase_seconds: float
) -> tuple[float, list[float], int]:
    """Run the trace against ``app``; return (machine-seconds, latencies in ms, failures)."""
    machine_seconds = 0.0
    latencies: list[float] = []
    failed = 0
    url = f"http://{app}.ferry.test/"
    for number, phase in enumerate(TRACE, start=1):
        procs = [
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    settings.plan.region(region).netns,
                    sys.executable,
                    str(CLIENT),
                    url,
                    str(phase_seconds),
                    "20",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for region, clients in phase.items()
            for _ in range(clients)
        ]
        client_regions = [region for region, clients in phase.items() for _ in range(clients)]
        end = time.monotonic() + phase_seconds
        while time.monotonic() < end:
            began = time.monotonic()
            started = sum(1 for m in client.list_machines(app) if m.state.value == "started")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
            machine_seconds += started * (time.monotonic() - began)
        for proc, region in zip(procs, client_regions, strict=True):
            out, _ = proc.communicate(timeout=phase_seconds + 60)
            result = json.loads(out)
            latencies += result["latencies_ms"]
            failed += result["failed"]
            if result["slow"] and VERBOSE:
                print(f"  {app} phase {number} client in {region}: slow {result['slow'][:8]}")
    return machine_seconds, latencies, failed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase-seconds", type=float, default=20.0)
    parser.add_argument("--verbose", action="store_true", help="list the slow requests")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    rows = {}
    try:
        with ephemeral_cluster(REGIONS, octet=194) as settings:
            deploy(settings, app_dir, "static", elastic=False)
            deploy(settings, app_dir, "static1", elastic=False, per_region=1)
            deploy(settings, app_dir, "elastic", elastic=True)
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                for app in ("static", "static1", "elastic"):
                    rows[app] = replay(settings, client, app, args.phase_seconds)
                decisions = client.autoscale_status("elastic").get("decisions", [])
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    day = len(TRACE) * args.phase_seconds
    print(
        f"conditions: {os.cpu_count()} cores, regions {', '.join(REGIONS)} (1 host each, "
        f"emulated WAN), {len(TRACE)} phases x {args.phase_seconds:g}s = {day:g}s day, "
        "clients: sequential GETs with 20 ms pause, demo app (busybox httpd)"
    )
    for app, (seconds, lat, failed) in rows.items():
        print(
            f"{app:<8} machine-seconds {seconds:7.1f}  requests {len(lat):6d}  failed {failed}  "
            f"p50 {statistics.median(lat):6.1f} ms  p99 {pct(lat, 0.99):6.1f} ms  "
            f"p99.9 {pct(lat, 0.999):6.1f} ms  over 50 ms: {sum(1 for x in lat if x > 50)}"
        )
    e_sec, e_lat, _ = rows["elastic"]
    for base in ("static", "static1"):
        s_sec, s_lat, _ = rows[base]
        print(
            f"elastic/{base}: machine-seconds {e_sec / s_sec:.2f} "
            f"({100 * (1 - e_sec / s_sec):.0f}% fewer), p99 "
            f"{pct(e_lat, 0.99) / pct(s_lat, 0.99):.2f}x  "
            "(goal: >= 50% fewer machine-seconds, p99 within 20%)"
        )
    print(f"autoscaler decisions during the run: {len(decisions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
