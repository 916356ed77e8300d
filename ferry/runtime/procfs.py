"""Reading /proc text about a container's processes: pure parsers plus two small readers.

The parsers take the text of ``/proc/<pid>/stat``, ``cmdline``, ``status`` and
``net/tcp{,6}`` (the fallback when ``sock_diag`` cannot answer) and raise
``ValueError`` on text they cannot read. ``ProcessSampler`` is the adapter: it
lists a container's processes from its cgroup's ``cgroup.procs`` and reads
each one's files (``read_pids`` and ``listening_of`` are its two small readers);
no exec, no runc call. Cost per machine and pass: one ``cgroup.procs`` read,
one ``sock_diag`` dump, and per process (at most ``MAX_PROCESSES``) four small
reads plus one readlink per open file (at most ``MAX_FDS``) when the machine
listens at all.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ferry.model.processes import MAX_PROCESSES, MAX_SOCKETS, MAX_TEXT, ListenSocket

__all__ = [
    "LISTEN_STATE",
    "MAX_FDS",
    "StatFields",
    "cpu_percent",
    "decode_address",
    "parse_cmdline",
    "parse_listening",
    "parse_nspid",
    "parse_stat",
    "socket_inode",
]

#: ``st`` of a listening socket in /proc/net/tcp (TCP_LISTEN).
LISTEN_STATE: Final = "0A"
#: Open files looked at per process when matching listening sockets to it.
MAX_FDS: Final = 1024


@dataclass(frozen=True)
class StatFields:
    """What Ferry uses of ``/proc/<pid>/stat`` (times in clock ticks, rss in pages)."""

    comm: str
    utime: int
    stime: int
    starttime: int
    rss_pages: int

    @property
    def cpu_ticks(self) -> int:
        return self.utime + self.stime


def parse_stat(text: str) -> StatFields:
    """Parse ``/proc/<pid>/stat``. ``comm`` may hold spaces and parentheses: it ends at
    the last ``)``. Fields after it, 1-based as in proc(5): 14 utime, 15 stime,
    22 starttime, 24 rss. Pure; ``ValueError`` on a short or garbled line."""
    open_at = text.find("(")
    close_at = text.rfind(")")
    if open_at < 0 or close_at < open_at:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    comm = text[open_at + 1 : close_at]
    rest = text[close_at + 1 :].split()
    # rest[0] is field 3 (state): field n is rest[n - 3].
    if len(rest) < 22:
        raise ValueError(f"/proc/<pid>/stat has {len(rest) + 2} fields, expected 24 or more")
    return StatFields(
        comm=comm,
        utime=int(rest[11]),
        stime=int(rest[12]),
        starttime=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def parse_nspid(status: str) -> int | None:
    """The pid a process has in its own (innermost) pid namespace, from the ``NSpid:``
    line of ``/proc/<pid>/status``; None without one. Pure."""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            return int(fields[-1]) if fields and fields[-1].isdigit() else None
    return None


def parse_cmdline(raw: bytes, comm: str) -> str:
    """The command line, arguments joined by spaces and cut to ``MAX_TEXT`` characters.

    A process without one (a zombie, a kernel thread) shows as ``[comm]``, like ps.
    Pure.
    """
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")]
    while args and not args[-1]:
        args.pop()
    command = " ".join(args) if args else f"[{comm}]"
    return command[:MAX_TEXT]


def decode_address(hex_address: str, proto: str) -> str:
    """``0100007F:1F90`` -> ``127.0.0.1:8080``; tcp6 -> ``[::1]:8080``. Pure.

    The kernel prints the address as 32-bit words in host (little-endian) order.
    """
    host_hex, _, port_hex = hex_address.partition(":")
    port = int(port_hex, 16)
    raw = bytes.fromhex(host_hex)
    if proto == "tcp":
        if len(raw) != 4:
            raise ValueError(f"not an IPv4 address in /proc/net/tcp: {hex_address!r}")
        return f"{ipaddress.IPv4Address(raw[::-1])}:{port}"
    if len(raw) != 16:
        raise ValueError(f"not an IPv6 address in /proc/net/tcp6: {hex_address!r}")
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return f"[{ipaddress.IPv6Address(words)}]:{port}"


def parse_listening(text: str, proto: str) -> dict[int, ListenSocket]:
    """Socket inode -> listening socket, from ``/proc/<pid>/net/tcp`` (``proto`` ``tcp``)
    or ``tcp6``. Only sockets in the LISTEN state. Pure; ``ValueError`` on a bad row."""
    listening: dict[int, ListenSocket] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 10:
            raise ValueError(f"short /proc/net/{proto} row: {line.strip()!r}")
        if fields[3] != LISTEN_STATE:
            continue
        address = decode_address(fields[1], proto)
        listening[int(fields[9])] = ListenSocket(proto=proto, address=address)
    return listening


def socket_inode(link: str) -> int | None:
    """``socket:[12345]`` (an fd's readlink) -> 12345; anything else -> None. Pure."""
    if link.startswith("socket:[") and link.endswith("]"):
        digits = link[len("socket:[") : -1]
        return int(digits) if digits.isdigit() else None
    return None


def cpu_percent(before_ticks: int, after_ticks: int, seconds: float, hertz: int) -> int:
    """Percent of one core used between two samples, rounded; 0 without a span. Pure."""
    if seconds <= 0 or after_ticks < before_ticks:
        return 0
    return round((after_ticks - before_ticks) / hertz / seconds * 100)


def listening_of(fds_dir: Path, listening: dict[int, ListenSocket]) -> list[ListenSocket]:
    """The listening sockets among a process's open files (``/proc/<pid>/fd``).

    Looks at no more than ``MAX_FDS`` files and keeps ``MAX_SOCKETS`` sockets. A process
    that ends meanwhile, or whose files are not readable, has none.
    """
    if not listening:
        return []
    found: list[ListenSocket] = []
    try:
        with os.scandir(fds_dir) as entries:
            for n, entry in enumerate(entries):
                if n >= MAX_FDS or len(found) >= MAX_SOCKETS:
                    break
                try:
                    inode = socket_inode(os.readlink(entry.path))
                except OSError:
                    continue
                if inode is not None and inode in listening:
                    found.append(listening[inode])
    except OSError:
        return []
    return found


def read_pids(cgroup_dirs: list[Path]) -> list[int]:
    """The pids in the first of ``cgroup_dirs`` that has a ``cgroup.procs``; the lowest
    ``MAX_PROCESSES`` of them, in order. An empty list when none exists (no container)."""
    for directory in cgroup_dirs:
        try:
            text = (directory / "cgroup.procs").read_text()
        except OSError:
            continue
        pids = sorted({int(line) for line in text.split() if line.isdigit()})
        return pids[:MAX_PROCESSES]
    return []
