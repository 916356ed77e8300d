"""What the proxy benchmarks share: ports, processes, CPU sampling, wrk runs, the route table.

``proxy_bench.py``, ``https_bench.py`` and ``h2_bench.py`` load a proxy on
127.0.0.1 and read its cost from /proc: ``cpu_times`` (the proxy's utime and
stime, worker processes included), ``machine_busy`` (every core's busy time)
and ``active_opens`` (TCP connects on the host). ``wrk`` runs wrk while
sampling those and reads its figures; each script checks them and says what
went wrong in its own words. Every process a benchmark starts goes into
``processes()``, which stops them all by PID, last started first.

Nothing here imports Ferry at module level: the edge's processes import it
once their environment (FERRY_PURE_PYTHON, PYTHONPATH) is set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferry.proxy.routes import RouteTable

HOST_HEADER = "bench.ferry.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- ports and processes ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to append started processes to; on the way out each is ``stop``ped, last first."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for proc in reversed(procs):
            stop(proc)


# -- CPU and connections, from /proc ---------------------------------------------------
def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) seconds of ``pid`` and its live children (worker processes)."""
    user = system = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    for each in (pid, *map(int, kids)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        user += int(fields[11]) / CLK_TCK
        system += int(fields[12]) / CLK_TCK
    return user, system


def machine_busy() -> float:
    """Seconds of CPU time spent not idle, over all cores, since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def active_opens() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    tcp = [line for line in lines if line[0] == "Tcp:"]
    return int(tcp[1][tcp[0].index("ActiveOpens")])


# -- wrk -------------------------------------------------------------------------------
@dataclass
class Figures:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    user_us: float | None  # per request
    sys_us: float | None
    machine_us: float  # the whole machine's busy CPU time per request
    connects_per_s: float

    @property
    def cpu_us(self) -> float | None:
        return None if self.user_us is None or self.sys_us is None else self.user_us + self.sys_us


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def wrk(name: str, cmd: list[str], pid: int, duration: int) -> tuple[Figures, str]:
    """Run ``cmd`` (wrk with ``--latency`` for ``duration`` seconds) against the proxy ``pid``.

    Returns the figures (CPU per request of ``pid`` and of the machine, connects per
    second) and wrk's output, for the caller to check for error answers and socket
    errors. Raises ``CalledProcessError`` when wrk fails.
    """
    user0, sys0 = cpu_times(pid)
    opens0, busy0 = active_opens(), machine_busy()
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    busy, opens = machine_busy() - busy0, active_opens() - opens0
    user1, sys1 = cpu_times(pid)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    per = 1e6 / requests if requests else 0.0
    figures = Figures(
        name, rps, p50, p99, requests,
        (user1 - user0) * per, (sys1 - sys0) * per, busy * per, opens / duration,
    )  # fmt: skip
    return figures, out


def add_wrk_options(parser: argparse.ArgumentParser) -> None:
    """``--duration --connections --threads --rounds``, in that order: wrk's load."""
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)


# -- the route table the bench edges serve ---------------------------------------------
def bench_table(
    backend_port: int, ports: tuple[int, ...], handlers: tuple[str, ...], tcp_port: int = 0
) -> RouteTable:
    """App ``bench``: one started machine in ams, the backend on 127.0.0.1:``backend_port``
    behind ``ports`` with ``handlers``; with ``tcp_port``, a raw TCP service there too.
    Limits high enough that the load never meets them."""
    from ferry.model import Concurrency, DesiredState, MachineState
    from ferry.proxy.routes import Backend, RouteTable, ServicePorts

    service = ServicePorts(
        internal_port=backend_port, ports=ports, handlers=handlers,
        concurrency=Concurrency(type="requests", soft_limit=1000, hard_limit=2000),
    )  # fmt: skip
    raw = ServicePorts(
        internal_port=backend_port, ports=(tcp_port,),
        concurrency=Concurrency(type="connections", soft_limit=1000, hard_limit=2000),
    )  # fmt: skip
    backend = Backend(
        "m-bench", "m-bench-i", "bench", "ams", "127.0.0.1",
        MachineState.STARTED, DesiredState.STARTED, (service, raw) if tcp_port else (service,),
    )  # fmt: skip
    return RouteTable(1, {"bench": (backend,)})
