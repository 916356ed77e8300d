"""Thin Linux adapters the runc driver needs: overlay mounts, /proc probes, cgroup dirs,
hole punching in log files.

Every function here is a single syscall or a file read — no exec — because
they sit on the machine-start path. Failures are raised as ``RuntimeFailure``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from ferry.errors import RuntimeFailure

__all__ = [
    "CGROUP_ROOT",
    "cgroup_frozen",
    "mount_overlay",
    "pid_in_cgroup",
    "pid_is_running",
    "punch_hole",
    "remove_cgroup_dirs",
    "thaw_cgroup",
    "unmount",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
_MNT_DETACH = 2
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
# fallocate64 takes 64-bit offsets on every ABI; plain fallocate only where off_t is 64-bit.
_fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


def mount_overlay(lower: Path, upper: Path, work: Path, merged: Path) -> None:
    """Mount an overlay of read-only ``lower`` with writable ``upper`` on ``merged``.

    One ``mount(2)`` call. Raises ``RuntimeFailure`` naming the errno.
    """
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if _libc.mount(b"overlay", os.fsencode(merged), b"overlay", 0, options.encode()) != 0:
        code = ctypes.get_errno()
        raise RuntimeFailure(
            f"could not mount the overlay rootfs on {merged}: {os.strerror(code)}",
            hint="the image cache and the container state must be on a filesystem "
            "that supports overlayfs upper dirs (ext4, xfs, tmpfs)",
        )


def unmount(target: Path) -> bool:
    """Unmount ``target``; lazily if it is busy. Returns False when nothing was mounted there.

    Idempotent. Raises ``RuntimeFailure`` on any other error.
    """
    path = os.fsencode(target)
    if _libc.umount2(path, 0) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return False
    if code == errno.EBUSY and _libc.umount2(path, _MNT_DETACH) == 0:
        return True
    code = ctypes.get_errno()
    raise RuntimeFailure(f"could not unmount {target}: {os.strerror(code)}")


def punch_hole(fd: int, offset: int, length: int) -> bool:
    """Free the disk blocks under ``length`` bytes at ``offset`` of the file open for
    writing as ``fd``; they then read back as zeros. The file's size is unchanged
    (``FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE``), so concurrent appends are unaffected.

    One ``fallocate(2)`` call. Only whole filesystem blocks are freed; the parts of
    partial blocks at either end are zeroed in place. Returns False when the
    filesystem cannot punch holes; raises ``RuntimeFailure`` naming any other errno.
    """
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS):
        return False
    raise RuntimeFailure(f"could not punch a hole in fd {fd}: {os.strerror(code)}")


def pid_is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie. One read of /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # the command name is in parentheses and may itself contain spaces or ')'
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def pid_in_cgroup(pid: int, cgroups_path: str) -> bool:
    """True if ``pid`` lives in the cgroup ``cgroups_path`` in any hierarchy.

    Guards against pid reuse: a pid file that outlived its process (a host reboot)
    must not make an unrelated process look like the container.
    """
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return any(line.endswith(cgroups_path) for line in text.splitlines())


def cgroup_frozen(cgroups_path: str) -> bool:
    """True if the cgroup ``cgroups_path`` (e.g. ``/ferry/<id>``) is frozen.

    cgroup v1 (and hybrid): ``freezer/<path>/freezer.state`` reads ``FROZEN``
    (``FREEZING`` is not yet frozen); pure v2: ``<path>/cgroup.freeze`` is 1.
    A missing cgroup is not frozen, nor one being removed while it is read (the
    kernel then answers ENODEV). One file read.
    """
    relative = cgroups_path.strip("/")
    for path, frozen in (
        (CGROUP_ROOT / "freezer" / relative / "freezer.state", "FROZEN"),
        (CGROUP_ROOT / relative / "cgroup.freeze", "1"),
    ):
        try:
            return path.read_text().strip() == frozen
        except OSError:  # gone (ENOENT), going (ENODEV), or no such hierarchy
            continue
    return False


def thaw_cgroup(cgroups_path: str) -> bool:
    """Thaw a frozen cgroup by its freezer file, as ``runc resume`` does, without its exec.

    Returns False (nothing done) when the cgroup has no freezer file, so the
    caller can fall back to runc. v1: writes ``THAWED`` to ``freezer.state``
    (thawing is immediate, unlike freezing); v2: writes 0 to ``cgroup.freeze``.
    Raises ``RuntimeFailure`` if the write fails.
    """
    relative = cgroups_path.strip("/")
    for path, value in (
        (CGROUP_ROOT / "freezer" / relative / "freezer.state", "THAWED"),
        (CGROUP_ROOT / relative / "cgroup.freeze", "0"),
    ):
        if not path.is_file():
            continue
        try:
            path.write_text(value)
        except OSError as exc:
            raise RuntimeFailure(f"could not thaw cgroup {cgroups_path}: {exc.strerror}") from exc
        return True
    return False


def remove_cgroup_dirs(relative: str) -> None:
    """rmdir ``relative`` (e.g. ``ferry/abc``) in every mounted cgroup hierarchy, if empty.

    Idempotent; missing dirs are fine. Raises ``RuntimeFailure`` if a dir still
    holds processes or children.
    """
    if not CGROUP_ROOT.is_dir():
        return
    busy: list[str] = []
    for hierarchy in CGROUP_ROOT.iterdir():
        target = hierarchy / relative
        try:
            target.rmdir()
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                busy.append(str(target))
            else:
                raise RuntimeFailure(f"could not remove cgroup {target}: {exc.strerror}") from exc
    if busy:
        raise RuntimeFailure(f"cgroups still in use: {', '.join(busy)}")
