"""Thin adapter over iproute2: namespaces, links, addresses, routes, sysctls.

Every function runs ``ip`` (batched where it can: one exec per call) and
translates a failure into ``NetworkError`` carrying ip's own message, except
the few at the end that a machine start needs: they are syscalls, no exec.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

from ferry.errors import NetworkError

NETNS_DIR = Path("/var/run/netns")


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    """Run ``ip [-n netns] ARGS``; return stdout. Raises ``NetworkError`` when ``check``."""
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


def ip_batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    """Run several ip commands in one exec (``ip -batch -``).

    With ``force`` ip keeps going past errors (used by idempotent teardown).
    """
    if not lines:
        return
    argv = ["ip", *(["-n", netns] if netns else []), *(["-force"] if force else []), "-batch", "-"]
    proc = subprocess.run(
        argv, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if proc.returncode != 0 and not force:
        raise NetworkError(f"ip batch in {netns or 'root namespace'} failed: {proc.stderr.strip()}")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns(prefix: str) -> list[str]:
    """Named network namespaces whose name starts with ``prefix``."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def add_netns(name: str) -> None:
    """Create a named network namespace with loopback up. Idempotent."""
    if not netns_exists(name):
        ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)


def delete_netns(name: str) -> None:
    """Delete a named network namespace (its veths go with it). Idempotent."""
    if netns_exists(name):
        ip("netns", "delete", name, check=False)


def set_sysctl(netns: str | None, key: str, value: str) -> None:
    """Write a network sysctl inside ``netns`` (``/proc/sys`` is per network namespace)."""
    argv = ["sysctl", "-qw", f"{key}={value}"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetworkError(f"cannot set {key}={value} in {netns or 'root'}: {proc.stderr.strip()}")


def netns_exec_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside ``netns`` as a client would (``ip netns exec``)."""
    return ["ip", "netns", "exec", netns, *argv]


def netns_enter_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs a daemon inside ``netns``, changing nothing but the network.

    Unlike ``ip netns exec``, ``nsenter --net`` keeps the mount namespace, so
    ``/sys/fs/cgroup`` stays visible (runc needs it). ``/sys/class/net`` then
    still shows the root namespace: ask ``ip`` about links instead.
    """
    return ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]


def link_exists(name: str, *, netns: str | None = None) -> bool:
    return bool(ip("-o", "link", "show", "dev", name, netns=netns, check=False).strip())


_MNT_DETACH = 2
_MS_BIND = 4096
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_CLONE_NEWNET = 0x40000000


def rename_netns(old: str, new: str) -> None:
    """Give the named namespace ``old`` the name ``new``, without an exec.

    A named namespace is a bind mount of its nsfs file under ``NETNS_DIR``
    (what ``ip netns add`` makes): bind it at the new name, then detach and
    remove the old one. Its links, addresses and routes are untouched. Raises
    ``NetworkError`` (after undoing a half-made name) when either step fails.
    """
    source, target = NETNS_DIR / old, NETNS_DIR / new
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except OSError as exc:
        raise NetworkError(f"cannot name network namespace {new}: {exc.strerror}") from exc
    if _libc.mount(os.fsencode(source), os.fsencode(target), None, _MS_BIND, None) != 0:
        code = ctypes.get_errno()
        target.unlink(missing_ok=True)
        raise NetworkError(f"cannot rename network namespace {old} to {new}: {os.strerror(code)}")
    delete_netns_now(old)


def delete_netns_now(name: str) -> None:
    """Remove the name of a namespace as ``ip netns delete`` does, without an exec:
    detach its bind mount and unlink the file. The namespace (and its veths)
    goes once no process is left in it. Idempotent."""
    path = NETNS_DIR / name
    _libc.umount2(os.fsencode(path), _MNT_DETACH)
    path.unlink(missing_ok=True)


def link_present(name: str) -> bool:
    """Whether a link ``name`` exists in this process's namespace (one ioctl, no exec)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def netns_has_link(netns: str, link: str) -> bool:
    """Whether the named namespace has a link ``link``, without an exec: a short-lived
    thread joins the namespace (``setns`` changes only the calling thread) and asks
    for the link's index. Falls back to ``ip`` when the namespace cannot be joined."""
    answer: list[bool] = []

    def probe() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        except OSError:
            return
        try:
            if _libc.setns(fd, _CLONE_NEWNET) == 0:
                answer.append(link_present(link))
        finally:
            os.close(fd)

    thread = threading.Thread(target=probe, name=f"probe-{netns}", daemon=True)
    thread.start()
    thread.join()
    if answer:
        return answer[0]
    return bool(ip("-o", "link", "show", "dev", link, netns=netns, check=False).strip())
