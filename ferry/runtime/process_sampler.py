"""``ProcessSampler``: a container's processes, read from its cgroup and the host's /proc.

The adapter around ``ferry.runtime.procfs`` (and ``sock_diag`` for the listening
sockets, one netlink dump per machine): no exec, no runc call. It keeps
each process's CPU ticks from the previous sample, so ``cpu`` is the percent
of one core used between two samples of the same process (0 on its first).
Not thread-safe: one caller (the agent's ps loop) owns it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ferry.model.processes import MAX_TEXT, ListenSocket, ProcessStat
from ferry.runtime.host_os import CGROUP_ROOT
from ferry.runtime.procfs import (
    StatFields,
    cpu_percent,
    listening_of,
    parse_cmdline,
    parse_listening,
    parse_nspid,
    parse_stat,
    read_pids,
)
from ferry.runtime.sock_diag import listening_in_namespaces

__all__ = ["ProcessSampler", "boot_time"]

#: cgroup hierarchies that list a container's processes: cgroup v1 (hybrid) then v2.
_PROCS_HIERARCHIES = ("pids", "memory", "")


def boot_time(proc: Path = Path("/proc")) -> int:
    """The host's boot time, Unix seconds (``btime`` in /proc/stat)."""
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("/proc/stat has no btime line")


class ProcessSampler:
    """Samples the processes of containers by their cgroup path (``/ferry/<id>``)."""

    def __init__(
        self,
        *,
        proc: Path = Path("/proc"),
        cgroup_root: Path = CGROUP_ROOT,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        listening: Callable[
            [Sequence[str]], Mapping[str, dict[int, ListenSocket] | None]
        ] = listening_in_namespaces,
    ) -> None:
        self.proc = proc
        self.cgroup_root = cgroup_root
        self.clock = clock
        self.wall_clock = wall_clock
        self.listening = listening
        self.hertz = os.sysconf("SC_CLK_TCK")
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.boot = boot_time(proc)
        # (pid, starttime) -> (cpu ticks, monotonic seconds) of the previous sample
        self._previous: dict[tuple[int, int], tuple[int, float]] = {}

    def sample(self, cgroups_paths: Iterable[str]) -> dict[str, list[ProcessStat]]:
        """cgroup path -> its processes now (lowest pids first, at most ``MAX_PROCESSES``),
        each with the pid it has inside the container (its init is 1).

        A container that is gone has an empty list; a process that ends while it
        is read is left out. Forgets the CPU ticks of processes it no longer sees.
        """
        now = self.clock()
        pids = {path: read_pids(self._cgroup_dirs(path)) for path in cgroups_paths}
        namespaces = {
            path: f"{self.proc}/{found[0]}/ns/net" for path, found in pids.items() if found
        }
        sockets = self.listening(list(namespaces.values()))
        seen: dict[tuple[int, int], tuple[int, float]] = {}
        result: dict[str, list[ProcessStat]] = {}
        for path, found in pids.items():
            listening = sockets.get(namespaces[path]) if found else {}
            if listening is None:
                listening = self._listening_from_proc(found[0])
            result[path] = self._sample_one(found, listening, now, seen)
        self._previous = seen
        return result

    def _cgroup_dirs(self, cgroups_path: str) -> list[Path]:
        relative = cgroups_path.strip("/")
        return [
            self.cgroup_root / h / relative if h else self.cgroup_root / relative
            for h in _PROCS_HIERARCHIES
        ]

    def _sample_one(
        self,
        pids: list[int],
        listening: dict[int, ListenSocket],
        now: float,
        seen: dict[tuple[int, int], tuple[int, float]],
    ) -> list[ProcessStat]:
        wall = self.wall_clock()
        stats: list[ProcessStat] = []
        for pid in pids:
            base = self.proc / str(pid)
            try:
                fields = parse_stat((base / "stat").read_text())
                cmdline = (base / "cmdline").read_bytes()
                inner_pid = parse_nspid((base / "status").read_text())
            except (OSError, ValueError):
                continue  # ended while we read it
            seen[(pid, fields.starttime)] = (fields.cpu_ticks, now)
            stat = self._stat(pid, fields, cmdline, base, listening, now, wall)
            stats.append(stat.model_copy(update={"pid": inner_pid or pid}))
        return stats

    def _stat(
        self,
        pid: int,
        fields: StatFields,
        cmdline: bytes,
        base: Path,
        listening: dict[int, ListenSocket],
        now: float,
        wall: float,
    ) -> ProcessStat:
        started = self.boot + fields.starttime // self.hertz
        previous = self._previous.get((pid, fields.starttime))
        cpu = 0
        if previous is not None:
            cpu = cpu_percent(previous[0], fields.cpu_ticks, now - previous[1], self.hertz)
        try:
            directory = os.readlink(base / "cwd")
        except OSError:
            directory = ""
        return ProcessStat(
            pid=pid,
            stime=started,
            rtime=max(0, int(wall) - started),
            command=parse_cmdline(cmdline, fields.comm),
            directory=directory[:MAX_TEXT],
            cpu=cpu,
            rss=fields.rss_pages * self.page_size,
            listen_sockets=listening_of(base / "fd", listening),
        )

    def _listening_from_proc(self, pid: int) -> dict[int, ListenSocket]:
        """The listening TCP sockets of the namespace of ``pid`` from /proc/<pid>/net/tcp{,6}:
        the slow way (~9 ms a file), when ``sock_diag`` could not answer."""
        listening: dict[int, ListenSocket] = {}
        for proto in ("tcp", "tcp6"):
            try:
                text = (self.proc / str(pid) / "net" / proto).read_text()
                listening.update(parse_listening(text, proto))
            except (OSError, ValueError):
                continue  # no IPv6 in the namespace, or the process ended
        return listening
