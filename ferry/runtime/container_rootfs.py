"""A container's root filesystem on the host: the overlay of its image, and with a user
namespace the mounts that make the image's files belong to the container's uid range.

``mount_rootfs`` builds it, ``unmount_rootfs`` takes it apart; the runc driver
owns the directories (see ``ferry.runtime.runc``). Every step is a syscall or
two; ``mount_idmapped`` also takes a user namespace helper made ahead of time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ferry.errors import RuntimeFailure
from ferry.runtime.driver import ContainerSpec
from ferry.runtime.host_os import mount_overlay, unmount
from ferry.runtime.idmap_mounts import mount_idmapped, prepare_network_namespace

__all__ = ["RootfsDirs", "make_searchable_dirs", "mount_rootfs", "unmount_rootfs"]


@dataclass(frozen=True)
class RootfsDirs:
    """Where one container's layers and mounts live.

    ``upper``, ``work``, ``lower`` and ``sys`` lie in the container's private
    directory; ``rootfs`` (the overlay) where the container's root can reach it.
    """

    upper: Path
    work: Path
    lower: Path  # the image idmapped into the container's range (user namespace only)
    sys: Path  # a sysfs of its network namespace (user namespace + given netns only)
    rootfs: Path
    volumes: Path | None = None  # <n>/: volume n idmapped into the range (user namespace)


@dataclass(frozen=True)
class MountedRootfs:
    """What the OCI spec and the file writer need to know about the mounted rootfs."""

    sysfs: Path | None  # bind this on /sys instead of letting runc mount a sysfs
    owner: tuple[int, int] | None  # host uid and gid of the container's root
    # (path in the machine, host directory to bind there) of each volume
    volumes: tuple[tuple[str, Path], ...] = ()


def make_searchable_dirs(path: Path) -> None:
    """mkdir -p ``path``, each directory made here mode 0711: others may pass, not list."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o711)
            os.chmod(directory, 0o711)  # mkdir's mode is cut by the umask


def mount_rootfs(dirs: RootfsDirs, spec: ContainerSpec) -> MountedRootfs:
    """Mount ``spec``'s image as an overlay on ``dirs.rootfs`` (``upper`` and ``work``
    must exist); with ``spec.id_range``, through an idmapped, read-only view of the
    image, the upper layer's root owned by the container's root, and a sysfs of
    ``spec.netns_path`` (whose sysctls are set as Docker's) when given. Raises
    ``RuntimeFailure``; what was made before a failure is left for ``unmount_rootfs``.

    ``dirs.rootfs`` is made in a directory of its own, mode 0700 and owned by the
    container's root: runc (as that root) can reach the root filesystem, the
    host's other users cannot.
    """
    id_range = spec.id_range
    root_ids = None if id_range is None else (id_range.host_id, id_range.host_id)
    guard = dirs.rootfs.parent
    with contextlib.suppress(FileExistsError):  # a crash's leftover: reused
        guard.mkdir(mode=0o700)
    if root_ids is not None:
        os.chown(guard, *root_ids)
    with contextlib.suppress(FileExistsError):
        dirs.rootfs.mkdir()
    if id_range is None or root_ids is None:
        mount_overlay(spec.image.rootfs, dirs.upper, dirs.work, dirs.rootfs)
        return MountedRootfs(sysfs=None, owner=None, volumes=spec.volumes)
    dirs.lower.mkdir()
    mount_idmapped(spec.image.rootfs, dirs.lower, id_range)
    os.chown(dirs.upper, *root_ids)  # the overlay's root dir takes the upper's owner
    mount_overlay(dirs.lower, dirs.upper, dirs.work, dirs.rootfs)
    sysfs = None
    if spec.netns_path is not None:
        dirs.sys.mkdir()
        prepare_network_namespace(spec.netns_path, dirs.sys)
        sysfs = dirs.sys
    volumes = []
    for number, (destination, source) in enumerate(spec.volumes):
        # The volume keeps root as 0 on disk: an idmapped view makes its files the
        # machine's, whatever uid range this machine holds (the next may hold another).
        assert dirs.volumes is not None, "a container with volumes needs a volumes dir"
        view = dirs.volumes / str(number)
        view.mkdir(parents=True)
        mount_idmapped(source, view, id_range, readonly=False)
        volumes.append((destination, view))
    return MountedRootfs(sysfs=sysfs, owner=root_ids, volumes=tuple(volumes))


def unmount_rootfs(dirs: RootfsDirs, legacy_rootfs: Path) -> None:
    """Unmount the overlay and remove its directory, then unmount what lies in the
    container's directory. Idempotent. ``legacy_rootfs``: where an older Ferry
    mounted the overlay, for containers it left running.

    Raises ``RuntimeFailure`` while anything stays mounted: removing a directory
    then would reach into the container's layer, the shared image or /sys.
    """
    views = sorted(dirs.volumes.iterdir()) if dirs.volumes and dirs.volumes.is_dir() else []
    for point in (dirs.rootfs, legacy_rootfs, dirs.sys, dirs.lower, *views):
        unmount(point)
        if os.path.ismount(point):
            # Removing the directory now would delete a volume's files through it.
            raise RuntimeFailure(f"{point} is still mounted; its directory is kept")
    shutil.rmtree(dirs.rootfs.parent, ignore_errors=True)  # now a plain, empty directory
