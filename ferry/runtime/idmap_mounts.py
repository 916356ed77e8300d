"""Mounts that let a machine in its own user namespace use a shared image and its network.

``mount_idmapped`` makes an idmapped bind mount (``mount_setattr(2)``,
``MOUNT_ATTR_IDMAP``) of an image's unpacked rootfs: a file owned by uid N on
disk shows as ``host_id + N`` through it, which is root (or N) inside the
machine's user namespace. The image stays unpacked once, owned as its layers
say, and is shared by every machine: each machine's overlay takes its own
idmapped view of it as the lower layer (overlayfs supports idmapped layers
since Linux 5.19). No file is copied or chowned; it costs a helper process
(made ahead: it owns a user namespace given the mapping) and a few syscalls.

``prepare_network_namespace`` mounts a read-only sysfs that belongs to a
machine's network namespace and sets Docker's sysctls in it. runc cannot: the
namespace is made by the agent (ahead of time, in the host's user namespace),
and the kernel lets only a process with capabilities over a network
namespace's owner mount a sysfs for it or change its sysctls.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from ferry.errors import RuntimeFailure
from ferry.runtime.userns import IdRange
from ferry.runtime.userns_pool import UsernsHelpers

__all__ = ["NETWORK_SYSCTLS", "mount_idmapped", "prepare_network_namespace", "user_namespace"]

_SYS_OPEN_TREE = 428  # x86-64 and arm64 share these numbers (the new mount API)
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_MOUNT_ATTR_RDONLY = 0x00000001
_MOUNT_ATTR_IDMAP = 0x00100000
_MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_HELPERS = UsernsHelpers()


@contextlib.contextmanager
def user_namespace(id_range: IdRange) -> Iterator[int]:
    """An fd of a fresh user namespace mapping ``id_range`` (uids and gids), open for
    the block. Blocking: well under a millisecond with a helper made ahead
    (``ferry.runtime.userns_pool``), 2-8 ms without. Raises ``RuntimeFailure``.

    The helper's maps are written from here (root outside); it ends when its
    stdin closes. The namespace outlives it while the fd (or a mount made with
    it) holds a reference.
    """
    helper = _HELPERS.take()
    try:
        proc = Path(f"/proc/{helper.pid}")
        (proc / "uid_map").write_text(id_range.proc_map())
        (proc / "setgroups").write_text("deny")
        (proc / "gid_map").write_text(id_range.proc_map())
        fd = os.open(proc / "ns" / "user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(f"cannot map ids in a user namespace: {exc}") from exc
    finally:
        _HELPERS.done(helper)
    try:
        yield fd
    finally:
        os.close(fd)


def mount_idmapped(source: Path, target: Path, id_range: IdRange, *, readonly: bool = True) -> None:
    """Bind ``source`` (not recursively) on ``target``, ids shifted by ``id_range``;
    read-only unless ``readonly`` is false (a volume).

    ``target`` must exist. Raises ``RuntimeFailure`` naming the failing step and
    errno (``EINVAL`` from mount_setattr: the filesystem cannot be idmapped).
    """
    tree = _libc.syscall(
        _SYS_OPEN_TREE, _AT_FDCWD, os.fsencode(source), _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC
    )
    if tree < 0:
        _fail("open_tree", source)
    try:
        with user_namespace(id_range) as userns:
            flags = _MOUNT_ATTR_IDMAP | (_MOUNT_ATTR_RDONLY if readonly else 0)
            attr = _MountAttr(flags, 0, 0, userns)
            if (
                _libc.syscall(
                    _SYS_MOUNT_SETATTR,
                    tree,
                    b"",
                    _AT_EMPTY_PATH,
                    ctypes.byref(attr),
                    ctypes.sizeof(attr),
                )
                < 0
            ):
                _fail("mount_setattr(MOUNT_ATTR_IDMAP)", source)
        moved = _libc.syscall(
            _SYS_MOVE_MOUNT, tree, b"", _AT_FDCWD, os.fsencode(target), _MOVE_MOUNT_F_EMPTY_PATH
        )
        if moved < 0:
            _fail("move_mount", target)
    finally:
        os.close(tree)


#: Docker's defaults for a container's network namespace: any port may be bound and
#: any group may ping. Without them root in a user namespace could not listen on
#: port 80, as its capabilities do not reach a network namespace it does not own.
NETWORK_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/ip_unprivileged_port_start", "0"),
    ("net/ipv4/ping_group_range", "0 2147483647"),
)


def prepare_network_namespace(netns: Path, sysfs_target: Path) -> None:
    """Ready the agent-made network namespace ``netns`` for a machine in a user namespace
    of its own: mount a read-only sysfs (nosuid, nodev, noexec) of it on
    ``sysfs_target``, and set ``NETWORK_SYSCTLS`` in it. A short-lived thread joins
    the namespace (``setns`` changes only the calling thread; /proc/sys/net follows
    it), so the agent's own threads never leave theirs. Blocking.

    Raises ``RuntimeFailure`` naming the step and the errno.
    """
    failure: list[str] = []

    def work_there() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            failure.append(f"cannot open {netns}: {exc.strerror}")
            return
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                failure.append(f"cannot join {netns}: {os.strerror(ctypes.get_errno())}")
                return
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            if _libc.mount(b"sysfs", os.fsencode(sysfs_target), b"sysfs", flags, None) != 0:
                failure.append(f"cannot mount sysfs: {os.strerror(ctypes.get_errno())}")
                return
            for name, value in NETWORK_SYSCTLS:
                try:
                    Path("/proc/sys", name).write_text(value)
                except OSError as exc:
                    failure.append(f"cannot set {name.replace('/', '.')}: {exc.strerror}")
                    return
        finally:
            os.close(fd)

    thread = threading.Thread(target=work_there, name="netns-prepare", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise RuntimeFailure(f"cannot ready the machine's network namespace: {failure[0]}")


def _fail(step: str, path: Path) -> NoReturn:
    code = ctypes.get_errno()
    raise RuntimeFailure(
        f"{step} failed on {path}: {os.strerror(code)}",
        hint="user namespaces need Linux 5.19 or newer and an image cache on a filesystem "
        "that supports idmapped mounts (ext4, xfs, btrfs, tmpfs)",
    )
