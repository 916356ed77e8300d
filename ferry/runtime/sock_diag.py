"""Listening TCP sockets of a network namespace through netlink ``sock_diag``.

Why not ``/proc/<pid>/net/tcp``: reading it walks the host's whole TCP
established hash (about 9 ms per file on these hosts, whatever the namespace
holds); a ``sock_diag`` dump asking only for ``LISTEN`` walks only the
listening hash (tens of microseconds). The socket must be made inside the
machine's namespace: ``listening_in_namespaces`` does that in a throwaway
thread that ``setns``-es into each namespace in turn, so no other thread of
the agent ever changes namespace. Needs CAP_SYS_ADMIN (the agent runs as root).

The request builder and the answer parser are pure (bytes in, bytes out).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Sequence
from typing import Final

from ferry.model.processes import ListenSocket

__all__ = ["listen_request", "listening_in_namespaces", "parse_diag_answer"]

NETLINK_SOCK_DIAG: Final = 4
SOCK_DIAG_BY_FAMILY: Final = 20
NLM_F_REQUEST: Final = 0x1
NLM_F_DUMP: Final = 0x300
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
TCP_LISTEN: Final = 10
CLONE_NEWNET: Final = 0x40000000

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ_V2 = struct.Struct("=BBBBI48s")  # family, protocol, ext, pad, states, sockid
# inet_diag_msg: family, state, timer, retrans, sport, dport (big-endian), src, dst,
# if, cookie, expires, rqueue, wqueue, uid, inode
_DIAG_MSG = struct.Struct("=BBBB2s2s16s16sI8sIIIII")
_PROTO = {socket.AF_INET: "tcp", socket.AF_INET6: "tcp6"}


def listen_request(family: int, seq: int = 1) -> bytes:
    """A ``SOCK_DIAG_BY_FAMILY`` dump request for the TCP sockets in LISTEN. Pure."""
    body = _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN, bytes(48))
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    return header + body


def parse_diag_answer(data: bytes) -> tuple[dict[int, ListenSocket], bool]:
    """Socket inode -> listening socket from one netlink read, and whether the dump ended.

    Pure. Raises ``OSError`` for a netlink error message, ``ValueError`` for a truncated one.
    """
    found: dict[int, ListenSocket] = {}
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise ValueError(f"truncated netlink message ({length} bytes at {offset})")
        body = offset + _NLMSGHDR.size
        if kind == NLMSG_DONE:
            return found, True
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, body)
            raise OSError(-code, f"sock_diag: {os.strerror(-code)}")
        if kind == SOCK_DIAG_BY_FAMILY:
            if length - _NLMSGHDR.size < _DIAG_MSG.size:
                raise ValueError("truncated inet_diag_msg")
            fields = _DIAG_MSG.unpack_from(data, body)
            family, state, sport, src, inode = (
                fields[0],
                fields[1],
                fields[4],
                fields[6],
                fields[14],
            )
            if state == TCP_LISTEN and family in _PROTO:
                port = int.from_bytes(sport, "big")
                found[inode] = ListenSocket(
                    proto=_PROTO[family], address=_address(family, src, port)
                )
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return found, False


def _address(family: int, raw: bytes, port: int) -> str:
    if family == socket.AF_INET:
        return f"{ipaddress.IPv4Address(raw[:4])}:{port}"
    return f"[{ipaddress.IPv6Address(raw)}]:{port}"


def _dump_listening() -> dict[int, ListenSocket]:
    """The listening sockets of the calling thread's network namespace."""
    found: dict[int, ListenSocket] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(2.0)
        for family in (socket.AF_INET, socket.AF_INET6):
            diag.sendall(listen_request(family))
            for _ in range(10_000):  # bounded: a dump ends with NLMSG_DONE
                part, done = parse_diag_answer(diag.recv(65536))
                found.update(part)
                if done:
                    break
    return found


def listening_in_namespaces(
    netns_paths: Sequence[str],
) -> dict[str, dict[int, ListenSocket] | None]:
    """Namespace path (``/proc/<pid>/ns/net``) -> its listening sockets, or None when it
    could not be read (the process ended, no privilege). Blocking; one short thread."""
    results: dict[str, dict[int, ListenSocket] | None] = {}
    if not netns_paths:
        return results
    libc = ctypes.CDLL(None, use_errno=True)

    def visit() -> None:
        # This thread alone changes namespace, and ends right after: nothing else sees it.
        for path in netns_paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                results[path] = None
                continue
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    results[path] = None
                    continue
                results[path] = _dump_listening()
            except (OSError, ValueError):
                results[path] = None
            finally:
                os.close(fd)

    worker = threading.Thread(target=visit, name="sock-diag", daemon=True)
    worker.start()
    worker.join()
    return results
