"""Removing everything an embedded cluster made: containers, mounts, cgroups, namespaces.

Idempotent and safe to run when the supervisor is already gone (``cluster down``
after a crash): it finds what is left by the cluster's names and paths only.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
from pathlib import Path

from ferry.cluster.settings import ClusterSettings
from ferry.cluster.topology import teardown_topology
from ferry.errors import NetworkError
from ferry.net.wireguard import delete_interfaces
from ferry.runtime.runc import RuncDriver

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def destroy_containers(settings: ClusterSettings) -> int:
    """Destroy every container of every host of the cluster; return how many."""
    count = 0
    hosts_dir = settings.home / "hosts"
    if not hosts_dir.is_dir():
        return 0
    for host_dir in sorted(hosts_dir.iterdir()):
        runtime = host_dir / "runtime"
        if not runtime.is_dir():
            continue
        driver = RuncDriver(runtime, cgroup_parent=cgroup_parent(settings, host_dir.name))
        for container in driver.list():
            driver.destroy(container.container_id)
            count += 1
        with contextlib.suppress(Exception):
            driver.cleanup()
    return count


def cgroup_parent(settings: ClusterSettings, host_id: str) -> str:
    """The cgroup parent of a host's machines (agents and cleanup must agree)."""
    return f"ferry-{settings.prefix}-{host_id}"


def unmount_under(root: Path) -> list[str]:
    """Unmount every mount below ``root`` (deepest first); return the mount points."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(root.resolve()) + "/"
    points = sorted(
        (line.split()[1] for line in mounts if line.split()[1].startswith(prefix)),
        key=len,
        reverse=True,
    )
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return points


def remove_cgroups(settings: ClusterSettings) -> None:
    """rmdir the (empty) cgroup parents of the cluster's hosts in every hierarchy."""
    if not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        for parent in hierarchy.glob(f"ferry-{settings.prefix}-*"):
            for sub in sorted(parent.rglob("*"), key=lambda p: len(str(p)), reverse=True):
                if sub.is_dir():
                    with contextlib.suppress(OSError):
                        sub.rmdir()
            with contextlib.suppress(OSError):
                parent.rmdir()


def cleanup_cluster(settings: ClusterSettings, *, purge: bool) -> None:
    """Remove containers, mounts, cgroups and namespaces; with ``purge`` also the state dir."""
    destroyed = destroy_containers(settings)
    unmounted = unmount_under(settings.home)
    remove_cgroups(settings)
    try:  # before the namespaces: a running wireguard-go would keep its namespace alive
        delete_interfaces(settings.prefix)
    except NetworkError as exc:
        log.warning("cleanup: %s", exc)
    namespaces = teardown_topology(settings.prefix)
    log.info(
        "cleanup: %d containers, %d mounts, %d namespaces removed",
        destroyed,
        len(unmounted),
        len(namespaces),
    )
    if purge:
        shutil.rmtree(settings.home, ignore_errors=True)
