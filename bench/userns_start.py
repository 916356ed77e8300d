"""What user namespaces cost a machine's start: driver and raw runc, with and without,
interleaved one start at a time so every series sees the same load.

Run as root: ``.venv/bin/python bench/userns_start.py [--runs 30]``.

For each of ``runs`` rounds, four starts in a row: raw ``runc run -d`` with the
user-namespace spec (bundle and idmapped rootfs prepared before the clock, as in
``machine_start_raw``), ``RuncDriver.start()`` in a user namespace of its own,
then both without. All with the seccomp filter, on the same busybox rootfs. Each
driver container is destroyed before the next round. Everything made is removed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_start_raw import bench_range, make_busybox_rootfs, percentile, raw_runs, spec_for

from ferry.runtime.driver import ImageConfig, LocalImage
from ferry.runtime.host_os import remove_cgroup_dirs
from ferry.runtime.runc import RuncDriver


def rounds(work: Path, image: LocalImage, runs: int, cgroup_parent: str) -> dict[str, list[float]]:
    """Seconds per start of each series, ``runs`` interleaved rounds."""
    driver = RuncDriver(work / "driver-state", cgroup_parent=cgroup_parent)
    series: dict[str, list[float]] = {}
    try:
        for n in range(runs):
            for userns in (True, False):
                mode = "userns" if userns else "host ids"
                raw = raw_runs(
                    work, image, 1, cgroup_parent, seccomp=True, first=2 * n + userns, userns=userns
                )
                series.setdefault(f"raw runc, {mode}", []).extend(raw)
                spec = spec_for(
                    image,
                    f"drv-{n}-{int(userns)}",
                    id_range=bench_range(2000 + n) if userns else None,
                )
                began = time.perf_counter()
                driver.start(spec)
                series.setdefault(f"driver, {mode}", []).append(time.perf_counter() - began)
                driver.destroy(spec.container_id)
    finally:
        for status in driver.list():
            driver.destroy(status.container_id)
        driver.cleanup()
    return series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: runc, mounts and cgroups need it", file=sys.stderr)
        return 2
    cgroup_parent = f"ferry-bench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    try:
        make_busybox_rootfs(work / "image")
        image = LocalImage("sha256:" + "0" * 64, work / "image", ImageConfig())
        series = rounds(work, image, args.runs, cgroup_parent)
    finally:
        remove_cgroup_dirs(cgroup_parent)
        shutil.rmtree(work, ignore_errors=True)
    runc_version = subprocess.run(["runc", "--version"], capture_output=True, text=True)
    print(
        f"runc: {runc_version.stdout.splitlines()[0]}; kernel {platform.release()}; "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; rounds={args.runs}"
    )
    p50 = {name: statistics.median(samples) * 1000 for name, samples in series.items()}
    for name, samples in series.items():
        print(f"{name:<22} p50 {p50[name]:6.1f} ms  p95 {percentile(samples, 0.95) * 1000:6.1f} ms")
    for mode in ("userns", "host ids"):
        ratio = p50[f"driver, {mode}"] / p50[f"raw runc, {mode}"]
        print(f"ratio driver/raw, {mode}: {ratio:.2f}  (goal <= 1.5)")
    cost = p50["driver, userns"] - p50["driver, host ids"]
    print(f"user namespace cost to the driver's start: {cost:+.1f} ms p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
