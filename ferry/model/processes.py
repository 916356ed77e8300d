"""The processes of a machine, in fly-go's ``ProcessStat`` shape (``GET …/machines/{id}/ps``).

Fields, as Ferry fills them (read from the host's /proc by the machine's agent):

- ``pid``: the process id inside the machine (its own pid namespace: the init is 1);
- ``stime``: when the process started, Unix seconds;
- ``rtime``: how long it had run when the list was taken, seconds;
- ``command``: its command line, arguments joined by spaces (``[comm]`` when it has none);
- ``directory``: its working directory inside the machine;
- ``cpu``: percent of one core it used between the agent's last two samples (0 on the first);
- ``rss``: resident memory, bytes;
- ``listen_sockets``: the TCP sockets it listens on (``proto`` ``tcp``/``tcp6``,
  ``address`` ``0.0.0.0:8080`` / ``[::]:8080``).

A report (agent → control plane) is bounded: ``MAX_PROCESSES`` per machine,
``MAX_SOCKETS`` per process, ``MAX_TEXT`` characters per string,
``MAX_REPORT_MACHINES`` machines per report.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, Field

__all__ = [
    "MAX_PROCESSES",
    "MAX_REPORT_MACHINES",
    "MAX_SOCKETS",
    "MAX_TEXT",
    "PS_AGE_HEADER",
    "PS_ORDERS",
    "PS_SORT_KEYS",
    "ListenSocket",
    "MachineProcesses",
    "ProcessReport",
    "ProcessStat",
    "sort_processes",
]

#: Processes listed per machine (the lowest pids: the machine's init and its first children).
MAX_PROCESSES: Final = 64
#: Listening sockets listed per process.
MAX_SOCKETS: Final = 32
#: Characters kept of a command line or a directory.
MAX_TEXT: Final = 1024
#: Machines one agent report may carry.
MAX_REPORT_MACHINES: Final = 1000
#: Response header of ``GET …/ps``: seconds since the agent took the list (one decimal).
PS_AGE_HEADER: Final = "Ferry-Ps-Age"
#: Fly's ``sort_by`` values, and ``order``.
PS_SORT_KEYS: Final = ("pid", "stime", "rtime", "command", "directory", "cpu", "rss")
PS_ORDERS: Final = ("asc", "desc")


class ListenSocket(BaseModel):
    proto: str = Field(max_length=8)
    address: str = Field(max_length=64)


class ProcessStat(BaseModel):
    pid: int = Field(ge=0)
    stime: int = Field(ge=0)
    rtime: int = Field(ge=0)
    command: str = Field(max_length=MAX_TEXT)
    directory: str = Field(max_length=MAX_TEXT)
    cpu: int = Field(ge=0)
    rss: int = Field(ge=0)
    listen_sockets: list[ListenSocket] = Field(default_factory=list, max_length=MAX_SOCKETS)


class MachineProcesses(BaseModel):
    """One machine's processes as its agent saw them (of the container of ``instance_id``)."""

    instance_id: str = Field(max_length=64)
    processes: list[ProcessStat] = Field(max_length=MAX_PROCESSES)


class ProcessReport(BaseModel):
    """``POST /v1/hosts/{host}/processes``: machine id -> its processes, taken just now."""

    machines: dict[str, MachineProcesses] = Field(max_length=MAX_REPORT_MACHINES)


def sort_processes(
    processes: list[ProcessStat], sort_by: str = "pid", order: str = "asc"
) -> list[ProcessStat]:
    """The processes ordered by one of ``PS_SORT_KEYS``, ``asc`` or ``desc``; ties by pid.

    Pure. Raises ``ValueError`` for a key or an order not listed (the route answers
    400 before it gets here).
    """
    if sort_by not in PS_SORT_KEYS or order not in PS_ORDERS:
        raise ValueError(f"cannot sort processes by {sort_by!r} {order!r}")
    ordered = sorted(processes, key=lambda p: p.pid)
    return sorted(ordered, key=lambda p: getattr(p, sort_by), reverse=order == "desc")
