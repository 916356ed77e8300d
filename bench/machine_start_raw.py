"""Machine start latency: raw ``runc run -d`` versus ``RuncDriver.start()`` on one rootfs.

Run as root: ``.venv/bin/python bench/machine_start_raw.py [--runs 20]``.

Both sides use the same busybox rootfs (the "cached image") and the same OCI
spec, seccomp filter included; raw runc is also timed without the filter, to
show what the filter costs. With user namespaces (the default; ``--no-userns``
for the old comparison) both sides run each container in its own user namespace
with its own uid range: the raw bundle gets the same spec (``user`` namespace,
``uidMappings``/``gidMappings``) and the same rootfs the driver makes (the image
idmapped into the range as the overlay's lower layer, the upper layer's root
owned by the range's root, the overlay mounted where the mapped root can reach
it). Raw: each run's bundle (those mounts and config.json) is prepared in
advance, and the time is from exec of ``runc run -d`` until the container's pid
is running. Driver: from the ``start()`` call to its return (overlay mount,
config, shim spawn, pid running). Everything made is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ferry.runtime.container_rootfs import (
    RootfsDirs,
    make_searchable_dirs,
    mount_rootfs,
    unmount_rootfs,
)
from ferry.runtime.driver import ContainerSpec, ImageConfig, LocalImage
from ferry.runtime.host_os import pid_is_running, remove_cgroup_dirs
from ferry.runtime.oci_spec import DEFAULT_CAPABILITIES, build_runtime_spec
from ferry.runtime.runc import RuncDriver
from ferry.runtime.seccomp import go_arch, load_profile, runtime_seccomp
from ferry.runtime.userns import SLOT_STRIDE, IdRange

SCRIPT = "sleep 600"
# Ranges far above any agent's (slots 30000-42948): a bench never shares uids with a machine.
BENCH_SLOT = 30_000
MOUNTS = Path("/run/ferry/rootfs")


def make_busybox_rootfs(rootfs: Path) -> None:
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep"):
        (rootfs / "bin" / applet).symlink_to("busybox")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def bench_range(n: int) -> IdRange:
    """The uid range of the bench's ``n``-th container (distinct for each)."""
    return IdRange((BENCH_SLOT + n) * SLOT_STRIDE)


def spec_for(
    image: LocalImage,
    container_id: str,
    process: tuple[str, ...] = ("sh", "-c", SCRIPT),
    id_range: IdRange | None = None,
) -> ContainerSpec:
    return ContainerSpec(container_id, image, process, {}, memory_mb=64, id_range=id_range)


def raw_runs(
    work: Path,
    image: LocalImage,
    runs: int,
    cgroup_parent: str,
    *,
    seccomp: bool,
    process: tuple[str, ...] = ("sh", "-c", SCRIPT),
    first: int = 0,
    userns: bool = True,
) -> list[float]:
    """``runc run -d`` of ``image``'s rootfs ``runs`` times; seconds from exec to pid running.

    Container ids count from ``first``, so calls on one ``work`` directory do not collide.
    ``userns``: each in a user namespace of its own, as the driver runs machines."""
    root = work / "raw-runc"
    caps = DEFAULT_CAPABILITIES
    release = os.uname().release
    bpf = runtime_seccomp(load_profile(), caps, arch=go_arch(), kernel_release=release)
    mounts = MOUNTS / f"bench-{os.getpid()}"
    bundles: list[tuple[str, Path, RootfsDirs]] = []
    samples: list[float] = []
    try:
        make_searchable_dirs(mounts)
        for n in range(first, first + runs):
            container_id = f"raw-{'s' if seccomp else 'n'}{n}"
            bundle = work / "raw" / container_id
            dirs = RootfsDirs(
                bundle / "upper",
                bundle / "work",
                bundle / "lower",
                bundle / "sys",
                mounts / container_id / "root",
            )
            for sub in (dirs.upper, dirs.work):
                sub.mkdir(parents=True)
            bundles.append((container_id, bundle, dirs))  # from here on, cleaned up in any case
            container = spec_for(image, container_id, process, bench_range(n) if userns else None)
            mount_rootfs(dirs, container)
            spec = build_runtime_spec(
                container,
                dirs.rootfs,
                f"/{cgroup_parent}/{container_id}",
                open_files_limit=1024,
                seccomp=bpf if seccomp else None,
            )
            (bundle / "config.json").write_text(json.dumps(spec))
        for container_id, bundle, _ in bundles:
            pid_file = bundle / "pid"
            argv = ["runc", "--root", str(root), "run", "-d", "--bundle", str(bundle)]
            argv += ["--pid-file", str(pid_file), container_id]
            began = time.perf_counter()
            # stdio must not be pipes: the detached container would hold them open
            with (bundle / "runc.log").open("wb") as log:
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    check=True,
                    timeout=30,
                )
            pid = int(pid_file.read_text())
            while not pid_is_running(pid):
                time.sleep(0.0005)
            samples.append(time.perf_counter() - began)
    finally:
        for container_id, _, _ in bundles:
            subprocess.run(
                ["runc", "--root", str(root), "kill", container_id, "KILL"],
                capture_output=True,
                check=False,
            )
        for container_id, bundle, dirs in bundles:
            subprocess.run(
                ["runc", "--root", str(root), "delete", "--force", container_id],
                capture_output=True,
                check=False,
            )
            unmount_rootfs(dirs, legacy_rootfs=bundle / "rootfs")
            remove_cgroup_dirs(f"{cgroup_parent}/{container_id}")
        with contextlib.suppress(OSError):
            mounts.rmdir()
    return samples


def driver_runs(
    work: Path, image: LocalImage, runs: int, cgroup_parent: str, *, userns: bool = True
) -> list[float]:
    driver = RuncDriver(work / "driver-state", cgroup_parent=cgroup_parent)
    samples: list[float] = []
    try:
        for n in range(runs):
            spec = spec_for(image, f"drv-{n}", id_range=bench_range(1000 + n) if userns else None)
            began = time.perf_counter()
            driver.start(spec)
            samples.append(time.perf_counter() - began)
    finally:
        for status in driver.list():
            driver.destroy(status.container_id)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--userns",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="each container in its own user namespace (default), as the agent runs machines",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: runc, overlay mounts and cgroups need it", file=sys.stderr)
        return 2
    cgroup_parent = f"ferry-bench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    try:
        make_busybox_rootfs(work / "image")
        image = LocalImage("sha256:" + "0" * 64, work / "image", ImageConfig())
        userns = args.userns
        raw = raw_runs(work, image, args.runs, cgroup_parent, seccomp=True, userns=userns)
        bare = raw_runs(work, image, args.runs, cgroup_parent, seccomp=False, userns=userns)
        driver = driver_runs(work, image, args.runs, cgroup_parent, userns=userns)
    finally:
        remove_cgroup_dirs(cgroup_parent)
        shutil.rmtree(work, ignore_errors=True)
    runc_version = subprocess.run(["runc", "--version"], capture_output=True, text=True)
    print(
        f"runc: {runc_version.stdout.splitlines()[0]}; kernel {platform.release()}; "
        f"{os.cpu_count()} cores; runs={args.runs}; "
        f"user namespaces {'on' if args.userns else 'off'}"
    )
    series = (
        ("raw `runc run -d`", raw),
        ("  without seccomp", bare),
        ("RuncDriver.start()", driver),
    )
    for label, samples in series:
        p50, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
        print(f"{label:<20} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    ratio = statistics.median(driver) / statistics.median(raw)
    print(f"ratio driver/raw p50 {ratio:.2f}  (goal <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
