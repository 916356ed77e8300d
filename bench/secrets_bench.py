"""Secrets: set one secret on an app with 6 machines in 3 regions until every machine runs with it.

Run as root: ``.venv/bin/python bench/secrets_bench.py [--rounds 5]``.

Starts a three-region embedded cluster (one host per region), deploys the
demo app (busybox httpd) and scales it to two machines per region, then times
whole `ferry secrets set ROUND=<n> -a hello` commands (CLI process start to
exit). The command returns when the control plane's roll has replaced every
running machine, one at a time, and each new instance reported ``started``:
each of those containers was made after the change, with the secrets its
agent fetched at start (tests/integration/agent/test_secrets.py checks the
value inside a real container). Also prints the roll's own time, as the
server measured it. Goal: <= 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

from _cluster import demo_app_dir, ferry_cli

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster

REGIONS = ("ams", "iad", "sin")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    wall: list[float] = []
    server_side: list[float] = []
    try:
        with ephemeral_cluster(REGIONS, octet=196) as settings:
            ferry_cli(settings, "deploy", "--regions", ",".join(REGIONS), cwd=app_dir)
            for region in REGIONS:
                ferry_cli(
                    settings, "scale", "count", "2", "--region", region, "-a", "hello", "--yes"
                )
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                for n in range(args.rounds):
                    began = time.perf_counter()
                    ferry_cli(settings, "secrets", "set", f"ROUND=round-{n}", "-a", "hello")
                    wall.append(time.perf_counter() - began)
                    rollout = client.list_secrets("hello").rollout
                    assert rollout is not None and rollout.state == "complete", rollout
                    assert rollout.total == 6, rollout
                    server_side.append(rollout.seconds)
                running = [m for m in client.list_machines("hello") if m.state.value == "started"]
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    print(
        f"conditions: {os.cpu_count()} cores, 3 regions x 1 host, demo app (busybox httpd), "
        f"2 machines per region, rounds={args.rounds}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"machines of 'hello' started at the end: {len(running)}")
    for label, samples in (("`ferry secrets set` (CLI)", wall), ("roll (server)", server_side)):
        print(
            f"{label:<28} median {statistics.median(samples):5.2f}s"
            f"  max {max(samples):5.2f}s  (goal <= 5 s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
