"""Benchmark: Ferry's edge proxy against single-threaded HAProxy, same backend, same run.

Run::

    .venv/bin/python bench/proxy_bench.py [--duration 10 --connections 50 --threads 2 --rounds 1]

Three setups, each loaded with ``wrk -t2 -c50 --latency`` on 127.0.0.1:

(a) the backend directly: a minimal uvloop + httptools server (its own
    process) answering every request with a 100-byte body, keep-alive;
(b) HAProxy (``/usr/sbin/haproxy``, ``nbthread 1``, config in a temp dir)
    in front of that backend;
(c) Ferry's ``EdgeProxy`` (one process, uvloop) in front of the same backend.

Figures: req/s, p50/p99 latency (wrk), and CPU per request of the proxy
process (utime+stime from /proc/<pid>/stat before/after, divided by the
requests wrk made), then the ratios Ferry/HAProxy. Every process is started
and stopped by PID; all sockets are on loopback.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST_HEADER = "bench.ferry.test"
BODY = b"x" * 99 + b"\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


# -- the processes under test ----------------------------------------------------------
def serve_backend(port: int) -> None:
    """The static backend: uvloop + httptools, keep-alive, 100-byte body."""
    import asyncio

    import httptools
    import uvloop

    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(BODY)
        + BODY
    )

    class Static(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_message_complete(self) -> None:
            self.transport.write(response)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Static, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def serve_ferry(port: int, backend_port: int) -> None:
    from ferry.model import Concurrency, DesiredState, MachineState
    from ferry.proxy.limits import ProxyLimits
    from ferry.proxy.routes import Backend, RouteTable, ServicePorts
    from ferry.proxy.server import run_proxy

    service = ServicePorts(
        internal_port=backend_port,
        ports=(80,),
        handlers=("http",),
        concurrency=Concurrency(type="requests", soft_limit=1000, hard_limit=2000),
    )
    backend = Backend(
        "m-bench", "m-bench-i", "bench", "ams", "127.0.0.1",
        MachineState.STARTED, DesiredState.STARTED, (service,),
    )  # fmt: skip
    table = RouteTable(1, {"bench": (backend,)})
    run_proxy(
        "ams", "ferry.test", lambda: table, {}, http_listen=("127.0.0.1", port),
        limits=ProxyLimits(upstream_idle_per_backend=256),
    )  # fmt: skip


HAPROXY_CFG = """global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
frontend edge
    bind 127.0.0.1:{port}
    default_backend app
backend app
    http-reuse always
    server app1 127.0.0.1:{backend_port}
"""


# -- load and figures ------------------------------------------------------------------
@dataclass
class Figures:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us_per_request: float | None


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def run_wrk(name: str, port: int, args: argparse.Namespace, pid: int | None) -> Figures:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Host: {HOST_HEADER}", f"http://127.0.0.1:{port}/",
    ]  # fmt: skip
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=args.duration + 30
    )
    after = cpu_seconds(pid) if pid else 0.0
    text = out.stdout
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if errors:
        print(f"  warning: {name}: {errors.group(1)} non-2xx responses", flush=True)
    cpu = (after - before) / requests * 1e6 if pid and requests else None
    return Figures(name, rps, p50, p99, requests, cpu)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-ferry", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return
    if args.serve_ferry:
        serve_ferry(*args.serve_ferry)
        return

    print(f"proxy bench: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, 100-byte body, backend: uvloop+httptools static")  # fmt: skip
    me = [sys.executable, str(Path(__file__).resolve())]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="ferry-proxy-bench-") as tmp:
        try:
            backend_port, haproxy_port, ferry_port = free_port(), free_port(), free_port()
            backend = subprocess.Popen([*me, "--serve-backend", str(backend_port)])
            procs.append(backend)
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(HAPROXY_CFG.format(port=haproxy_port, backend_port=backend_port))
            haproxy = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(cfg)])
            procs.append(haproxy)
            ferry = subprocess.Popen([*me, "--serve-ferry", str(ferry_port), str(backend_port)])
            procs.append(ferry)
            for port in (backend_port, haproxy_port, ferry_port):
                wait_for_port(port)
            results: dict[str, list[Figures]] = {"direct": [], "haproxy": [], "ferry": []}
            for _ in range(args.rounds):
                results["direct"].append(run_wrk("direct", backend_port, args, backend.pid))
                results["haproxy"].append(run_wrk("haproxy", haproxy_port, args, haproxy.pid))
                results["ferry"].append(run_wrk("ferry", ferry_port, args, ferry.pid))
        finally:
            for proc in reversed(procs):
                stop(proc)
    print(f"{'setup':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}")
    best: dict[str, Figures] = {}
    for name, figs in results.items():
        for f in figs:
            cpu = f"{f.cpu_us_per_request:.1f}" if f.cpu_us_per_request is not None else "-"
            print(f"{name:<10}{f.rps:>10.0f}{f.p50_ms:>9.2f}{f.p99_ms:>9.2f}{cpu:>12}")
        best[name] = max(figs, key=lambda f: f.rps)
    h, f = best["haproxy"], best["ferry"]
    assert h.cpu_us_per_request and f.cpu_us_per_request
    print(f"ferry/haproxy: req/s {f.rps / h.rps:.2f}x (goal >= 1.0), "
          f"p99 {f.p99_ms / h.p99_ms:.2f}x (goal <= 1.5), "
          f"CPU/req {f.cpu_us_per_request / h.cpu_us_per_request:.2f}x (goal <= 1.2)")  # fmt: skip


if __name__ == "__main__":
    main()
