"""Wake latency: a stopped machine -> first response through the edge proxy.

Run as root: ``.venv/bin/python bench/wake_bench.py [--runs 20]``.

One-region embedded cluster, the demo app with one machine. Each run stops
the machine (and waits until the edge's routing table has it stopped), then
times one request from a client in the region through the edge
(``curl -w %{time_total}``): the edge finds no started machine, asks the
control plane to start the nearest stopped one, holds the request until the
machine runs and accepts connections, then forwards it. Machines run under
the seccomp filter (Docker's default profile), as every machine does.
Baselines in the same run: the same request to the running machine through
the edge, and, interleaved (one before each wake, as the machine is shared),
raw ``runc run -d`` of the app's image rootfs with the same process and
seccomp filter (see ``machine_start.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from _cluster import demo_app_dir, ferry_cli
from machine_start import raw_baseline

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.cluster.settings import ClusterSettings


def timed_get(settings: ClusterSettings, url: str) -> tuple[int, float, str]:
    """(status, seconds, body) of one GET from a client in the region."""
    netns = settings.plan.region("ams").netns
    curl = ["curl", "-s", "-m", "30", "-w", "\n%{http_code} %{time_total}", url]
    argv = ["ip", "netns", "exec", netns, *curl]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout
    body, _, last = out.rpartition("\n")
    code, seconds = last.split()
    return int(code), float(seconds), body.strip()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wake_once(
    settings: ClusterSettings,
    client: FerryClient,
    machine_id: str,
    url: str,
    warm: list[float],
    wake: list[float],
) -> int:
    """Time one warm request, stop the machine, time the waking request; 1 if it failed."""
    code, seconds, _ = timed_get(settings, url)
    warm.append(seconds)
    client.stop_machine("hello", machine_id)
    client.wait_machine("hello", machine_id, state="stopped", timeout=30)
    time.sleep(0.3)  # the edge's table has the machine stopped
    code, seconds, body = timed_get(settings, url)
    wake.append(seconds)
    if code != 200:  # the edge's error page says why
        print(
            f"wake request answered {code} after {seconds * 1000:.0f} ms: {body}", file=sys.stderr
        )
    return 0 if code == 200 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    wake: list[float] = []
    warm: list[float] = []
    raw: list[float] = []
    failures = 0
    try:
        with ephemeral_cluster(("ams",), octet=193) as settings:
            ferry_cli(settings, "deploy", "--regions", "ams", cwd=app_dir)
            url = "http://hello.ferry.test/"
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                (machine,) = client.list_machines("hello")
                with raw_baseline(settings, machine.config) as raw_once:
                    for n in range(args.runs):
                        raw.append(raw_once(n))
                        failures += wake_once(settings, client, machine.id, url, warm, wake)
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    ms = [s * 1000 for s in wake]
    base = [s * 1000 for s in warm]
    print(
        f"conditions: {os.cpu_count()} cores, one region, demo app (busybox httpd), "
        f"runs={args.runs}, client in the machine's region"
    )
    print(
        f"wake (stopped -> first response)  p50 {statistics.median(ms):6.1f} ms  "
        f"p99 {pct(ms, 0.99):6.1f} ms  failures {failures}"
    )
    print(
        f"running machine (same request)     p50 {statistics.median(base):6.1f} ms  "
        f"p99 {pct(base, 0.99):6.1f} ms"
    )
    print(
        f"raw `runc run -d` (same rootfs, filter) p50 {statistics.median(raw) * 1000:6.1f} ms  "
        f"ratio wake/raw p50 {statistics.median(ms) / (statistics.median(raw) * 1000):.2f}"
    )
    print("goal: wake p50 <= 150 ms (Fly documents ~300 ms to boot, a few hundred ms to resume)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
