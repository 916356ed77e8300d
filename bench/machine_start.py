"""Machine start: from the API call to the process running, next to raw `runc run -d`.

Run as root: ``.venv/bin/python bench/machine_start.py [--runs 20]``.

Starts a one-region embedded cluster, deploys the demo app once (so its image
is in the registry and in the host's cache), then N times: POST a machine
(busybox ``sleep``) and long-poll ``/wait?state=started``; the time is from
sending the create request until the wait returns, i.e. until the agent has
seen the machine, prepared overlay rootfs, network namespace and cgroups,
started it under runc and reported it running. Also times ``start`` of a
stopped machine the same way. The baseline is a raw ``runc run -d`` of a
busybox rootfs (bundle prepared in advance) in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _cluster import demo_app_dir, ferry_cli
from machine_start_raw import make_busybox_rootfs, percentile, raw_runs

from ferry.client import FerryClient
from ferry.cluster.ephemeral import ephemeral_cluster
from ferry.model import InitConfig, MachineConfig
from ferry.runtime.driver import ImageConfig, LocalImage
from ferry.runtime.host_os import remove_cgroup_dirs


def api_runs(
    client: FerryClient, template: MachineConfig, runs: int
) -> tuple[list[float], list[float]]:
    config = template.model_copy(
        update={
            "init": InitConfig(exec=["/bin/busybox", "sleep", "600"]),
            "services": [],
            "checks": {},
        }
    )
    create: list[float] = []
    start: list[float] = []
    for _ in range(runs):
        began = time.perf_counter()
        m = client.create_machine("hello", config, region="ams")
        client.wait_machine("hello", m.id, state="started", instance_id=m.instance_id, timeout=30)
        create.append(time.perf_counter() - began)
        client.stop_machine("hello", m.id)
        client.wait_machine("hello", m.id, state="stopped", timeout=30)
        began = time.perf_counter()
        client.start_machine("hello", m.id)
        client.wait_machine("hello", m.id, state="started", timeout=30)
        start.append(time.perf_counter() - began)
        client.delete_machine("hello", m.id, force=True)
    return create, start


def raw_baseline(runs: int) -> list[float]:
    cgroup_parent = f"ferry-bench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    try:
        make_busybox_rootfs(work / "image")
        image = LocalImage("sha256:" + "0" * 64, work / "image", ImageConfig())
        return raw_runs(work, image, runs, cgroup_parent, seccomp=True)
    finally:
        remove_cgroup_dirs(cgroup_parent)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 2
    app_dir = demo_app_dir()
    try:
        with ephemeral_cluster(("ams",), octet=190) as settings:
            ferry_cli(settings, "deploy", "--regions", "ams", cwd=app_dir)
            token = settings.token_path.read_text().strip()
            with FerryClient(settings.api_url, token) as client:
                template = client.list_machines("hello")[0].config
                api_runs(client, template, 2)  # warm-up: connections, caches
                create, start = api_runs(client, template, args.runs)
            raw = raw_baseline(args.runs)
    finally:
        shutil.rmtree(app_dir.parent, ignore_errors=True)
    print(
        f"conditions: kernel {platform.release()}, {os.cpu_count()} cores, runs={args.runs}, "
        "busybox rootfs, one-region embedded cluster, image cached on the host"
    )
    rows = (
        ("raw `runc run -d`", raw),
        ("API create -> started", create),
        ("API start (stopped) -> started", start),
    )
    for label, samples in rows:
        p50, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
        print(f"{label:<32} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    base = statistics.median(raw)
    print(
        f"ratio create/raw p50 {statistics.median(create) / base:.2f}; "
        f"start/raw p50 {statistics.median(start) / base:.2f}  (goal <= 1.5 and <= 100 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
