"""Benchmark: Ferry's edge proxy against single-threaded HAProxy, same backend, same run.

Run::

    .venv/bin/python bench/proxy_bench.py [--duration 5 --connections 50 --threads 2
        --rounds 3 --backend uvloop|nginx|busybox|all --workers N --floor --pure
        --tcp --against TREE --profile FILE]

For each backend, every setup is loaded in turn with ``wrk -t2 -c50 --latency``
on 127.0.0.1, all processes on the same machine in the same run, ``--rounds``
times; the ratios to HAProxy are per round, reported as the median:

(a) the backend directly;
(b) HAProxy (``/usr/sbin/haproxy``, ``nbthread 1``, config in a temp dir),
    twice: ``haproxy`` relays as configured by default (no header work), and
    ``haproxy-eq`` is configured to do the edge's per-request work, so that
    both proxies put the same bytes on the wire: route by Host (a 404 for an
    unknown one), add X-Forwarded-For/-Proto/-Port, Fly-Client-IP,
    Fly-Request-Id (a unique id), Fly-Forwarded-Port, Fly-Region and Via to
    the request, Fly-Request-Id, Via and Server to the response;
(c) Ferry's ``EdgeProxy`` (one process on uvloop), with its hot path
    compiled by mypyc when ``make native`` built it (the line before the
    table says which); ``--pure`` adds a run with FERRY_PURE_PYTHON=1;
    ``--workers N`` (N > 1) adds a run with N processes sharing the port
    through SO_REUSEPORT;
(d) with ``--against TREE``: the Ferry of another checkout as well (say a
    clone at the commit before a change, with its own ``make native``),
    started by that tree's copy of this script and reported as ``ferry@base``
    with the ratio of this tree's Ferry to it — an A/B in the same run;
(e) with ``--tcp``: raw TCP relays — HAProxy in ``mode tcp`` and Ferry's
    TCP edge (a ``[[services]]`` port without an http handler), the same
    HTTP load passing through unparsed, one upstream connection per client;
(f) with ``--floor``: a 50-line uvloop + httptools relay that parses both
    sides and forwards bytes unchanged over one upstream connection per
    client: what any Python proxy on this stack pays at least.

Backends: ``uvloop`` is a minimal uvloop + httptools server answering every
request with a 100-byte body, keep-alive (cheap: ~10 µs per request);
``nginx`` is Debian's nginx-light (one worker) serving a 100-byte file,
keep-alive — the setup of the baseline in /work/shared/ENVIRONMENT.md, and
real response headers (Server, Date, ETag, Connection …) for the proxies to
rewrite; ``busybox`` is ``busybox httpd`` serving a 100-byte file (a forked
process per connection, no keep-alive, so every proxied request also opens an
upstream connection).

Figures: req/s and p50/p99 latency (wrk); CPU per request of the proxy
(utime+stime from /proc/<pid>/stat before/after, summed over worker
processes, divided by the requests wrk made), split into user and system
time; CPU per request of the whole machine (busy time from /proc/stat:
load generator, backend and proxy together — how ENVIRONMENT.md measured);
new TCP connections per second during the load (``ActiveOpens`` of
/proc/net/snmp counts every connect on the host, wrk's own included, so
working upstream pooling shows as ~0). ``--profile FILE`` runs Ferry under
cProfile and writes the stats to FILE. Every process is started and stopped
by PID; all sockets are on loopback.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtools import (  # noqa: E402
    HOST_HEADER,
    Figures,
    add_wrk_options,
    bench_table,
    free_port,
    processes,
    wait_for_port,
    wrk,
)

BODY = b"x" * 99 + b"\n"


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


def serve_floor(port: int, backend_port: int) -> None:
    """The floor: parse both sides with httptools, relay bytes, one upstream per client."""
    import asyncio

    import httptools
    import uvloop

    class Up(asyncio.Protocol):
        def __init__(self, client: Relay) -> None:
            self.client = client
            self.parser = httptools.HttpResponseParser(self)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)
            if not self.client.transport.is_closing():  # wrk may have hung up (busybox)
                self.client.transport.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.client.transport.close()

    class Relay(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.parser = httptools.HttpRequestParser(self)
            self.up: Up | None = None
            self.waiting: list[bytes] = []
            task = asyncio.get_running_loop().create_connection(
                lambda: Up(self), "127.0.0.1", backend_port
            )
            asyncio.ensure_future(task).add_done_callback(self.connected)

        def connected(self, fut: asyncio.Future[tuple[asyncio.BaseTransport, Up]]) -> None:
            self.up = fut.result()[1]
            for data in self.waiting:
                self.up.transport.write(data)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)
            if self.up is None:
                self.waiting.append(data)
            else:
                self.up.transport.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.up is not None:
                self.up.transport.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Relay, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def serve_ferry(port: int, backend_port: int, workers: int, tcp_port: int = 0) -> None:
    """Ferry's edge: HTTP on ``port``; with ``tcp_port``, a raw TCP service there too."""
    from ferry.proxy.limits import ProxyLimits
    from ferry.proxy.server import run_proxy

    table = bench_table(backend_port, (80,), ("http",), tcp_port)
    profile = os.environ.get("FERRY_BENCH_PROFILE")
    run = lambda: run_proxy(  # noqa: E731
        "ams", "ferry.test", lambda: table, {}, http_listen=("127.0.0.1", port),
        limits=ProxyLimits(upstream_idle_per_backend=256), workers=workers,
    )  # fmt: skip
    if not profile:
        run()
        return
    import cProfile

    profiler = cProfile.Profile()
    try:
        profiler.runcall(run)
    finally:
        profiler.dump_stats(profile)


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


#: HAProxy relaying raw TCP (a ``[[services]]`` port without an http handler).
HAPROXY_TCP_CFG = """global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend edge
    bind 127.0.0.1:{port}
    default_backend app
backend app
    server app1 127.0.0.1:{backend_port}
"""


#: HAProxy doing what Ferry's edge does to every request and response.
HAPROXY_EQ_CFG = HAPROXY_CFG.replace(
    "    default_backend app\n",
    """    unique-id-format %{{+X}}o%ci%cp%fp%Ts%rt%pid
    option forwardfor
    http-request return status 404 content-type text/plain string "no such app" """
    """unless {{ hdr(host) -i bench.ferry.test }}
    http-request set-header Fly-Client-IP %[src]
    http-request set-header Fly-Request-Id %[unique-id]-ams
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header Fly-Forwarded-Port %[dst_port]
    http-request set-header Fly-Region ams
    http-request add-header Via "1.1 ferry"
    http-response set-header Fly-Request-Id %[unique-id]-ams
    http-response add-header Via "1.1 ferry"
    http-response set-header Server Ferry
    use_backend app if {{ hdr(host) -i bench.ferry.test }}
""",
)


NGINX_CFG = """daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-body;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
    }}
}}
"""


# -- load and figures ------------------------------------------------------------------
def run_wrk(name: str, port: int, path: str, args: argparse.Namespace, pid: int) -> Figures:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Host: {HOST_HEADER}", f"http://127.0.0.1:{port}{path}",
    ]  # fmt: skip
    figures, text = wrk(name, cmd, pid, args.duration)
    errors = re.search(r"Non-2xx or 3xx responses: \d+", text)
    if errors:  # the figures of error pages are no figures: stop here
        sys.exit(f"proxy bench: {name} answered with errors ({errors.group(0)}); fix the setup")
    for problem in re.findall(r"Socket errors: .*", text):
        print(f"  warning: {name}: {problem}", flush=True)
    return figures


def bench_backend(kind: str, args: argparse.Namespace, tmp: Path) -> list[list[Figures]]:
    """Start the backend and every proxy in front of it; load each in turn, ``rounds`` times."""
    me = [sys.executable, str(Path(__file__).resolve())]
    setups: list[tuple[str, int, subprocess.Popen[bytes]]] = []
    with processes() as procs:
        backend_port = free_port()
        if kind == "nginx":
            # nginx's worker runs as nobody: it must be able to reach the file.
            tmp.chmod(0o755)
            (tmp / "www").mkdir(mode=0o755, exist_ok=True)
            (tmp / "www" / "index.html").write_bytes(BODY)
            cfg = tmp / "nginx.conf"
            cfg.write_text(NGINX_CFG.format(port=backend_port, tmp=tmp))
            backend = subprocess.Popen(["/usr/sbin/nginx", "-c", str(cfg), "-p", str(tmp)])
        elif kind == "busybox":
            (tmp / "www").mkdir(exist_ok=True)
            (tmp / "www" / "index.html").write_bytes(BODY)
            cmd = ["busybox", "httpd", "-f", "-p", f"127.0.0.1:{backend_port}", "-h"]
            backend = subprocess.Popen([*cmd, str(tmp / "www")])
        else:
            backend = subprocess.Popen([*me, "--serve-backend", str(backend_port)])
        procs.append(backend)
        setups.append(("direct", backend_port, backend))

        def launch(name: str, port: int, cmd: list[str], env: dict[str, str] | None = None) -> None:
            procs.append(subprocess.Popen(cmd, env=env))
            setups.append((name, port, procs[-1]))

        def haproxy(name: str, template: str) -> None:
            port = free_port()
            cfg = tmp / f"{name}-{kind}.cfg"
            cfg.write_text(template.format(port=port, backend_port=backend_port))
            launch(name, port, ["/usr/sbin/haproxy", "-db", "-f", str(cfg)])

        def ferry(
            name: str,
            script: list[str],
            *,
            workers: int = 1,
            tcp: bool = False,
            env: dict[str, str] | None = None,
        ) -> None:
            """A Ferry edge started by ``script`` (this tree's or --against's), measured on
            its HTTP port, or with ``tcp`` on a raw TCP service's port."""
            port, http_port = free_port(), free_port()
            serve = [str(http_port if tcp else port), str(backend_port), str(workers)]
            launch(
                name, port, [*script, "--serve-ferry", *serve, *([str(port)] if tcp else [])], env
            )

        haproxy("haproxy", HAPROXY_CFG)
        haproxy("haproxy-eq", HAPROXY_EQ_CFG)
        profiled = {**os.environ, "FERRY_BENCH_PROFILE": args.profile} if args.profile else None
        for workers in sorted({1, args.workers}):
            name = "ferry" if workers == 1 else f"ferry x{workers}"
            ferry(name, me, workers=workers, env=profiled if workers == 1 else None)
        if args.tcp:
            haproxy("haproxy-tcp", HAPROXY_TCP_CFG)
            ferry("ferry-tcp", me, tcp=True)
        if args.against:
            other = [sys.executable, str(Path(args.against) / "bench" / "proxy_bench.py")]
            ferry("ferry@base", other)
            if args.tcp:  # the other tree must know --tcp too
                ferry("ferry-tcp@base", other, tcp=True)
        if args.pure:
            ferry("ferry-py", me, env={**os.environ, "FERRY_PURE_PYTHON": "1"})
        if args.floor:
            port = free_port()
            launch("floor", port, [*me, "--serve-floor", str(port), str(backend_port)])
        for _, port, _ in setups:
            wait_for_port(port)
        time.sleep(0.5)  # let worker processes come up behind the shared port
        rounds: list[list[Figures]] = []
        for _ in range(args.rounds):
            rounds.append([run_wrk(name, port, "/", args, p.pid) for name, port, p in setups])
        return rounds


def report(kind: str, rounds: list[list[Figures]]) -> None:
    print(f"\nbackend: {kind}")
    print(f"{'setup':<15}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU µs/req':>12}"
          f"{'user':>7}{'sys':>7}{'machine':>9}{'conn/s':>8}")  # fmt: skip
    ratios: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    for figs in rounds:
        by_name = {f.name: f for f in figs}
        for f in figs:
            cpu = f"{f.cpu_us:.1f}" if f.cpu_us is not None else "-"
            user, system = f.user_us or 0.0, f.sys_us or 0.0
            print(f"{f.name:<15}{f.rps:>9.0f}{f.p50_ms:>8.2f}{f.p99_ms:>8.2f}{cpu:>12}"
                  f"{user:>7.1f}{system:>7.1f}{f.machine_us:>9.1f}"
                  f"{f.connects_per_s:>8.0f}")  # fmt: skip
            if not f.name.startswith(("ferry", "floor")) or not f.cpu_us:
                continue
            bases = ["haproxy", "haproxy-eq"]
            if f.name.startswith("ferry-tcp"):  # raw TCP against raw TCP
                bases = ["haproxy-tcp"]
            # and this tree's Ferry against the other tree's (--against)
            if f"{f.name}@base" in by_name:
                bases.append(f"{f.name}@base")
            for base in bases:
                h = by_name[base]
                if h.cpu_us:
                    ratios.setdefault((f.name, base), []).append(
                        (f.rps / h.rps, f.p99_ms / h.p99_ms, f.cpu_us / h.cpu_us,
                         f.machine_us / h.machine_us)
                    )  # fmt: skip
    # Each ratio compares runs of the same round (seconds apart); the median over
    # rounds resists this shared machine's bursts of noise.
    for (name, base), rows in ratios.items():
        rps, p99, cpu, machine = (statistics.median(col) for col in zip(*rows, strict=True))
        if base in (
            "ferry@base",
            "ferry-tcp@base",
            "haproxy-tcp",
        ):  # an A/B, or raw TCP: no goal stated
            print(f"{name}/{base}, median of {len(rows)} rounds: req/s {rps:.2f}x, "
                  f"p99 {p99:.2f}x, CPU/req {cpu:.2f}x, "
                  f"machine CPU/req {machine:.2f}x")  # fmt: skip
            continue
        print(f"{name}/{base}, median of {len(rows)} rounds: req/s {rps:.2f}x (goal >= 1.0), "
              f"p99 {p99:.2f}x (goal <= 1.5), CPU/req {cpu:.2f}x (goal <= 1.2), "
              f"machine CPU/req {machine:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_wrk_options(parser)
    parser.add_argument(
        "--backend", choices=("uvloop", "nginx", "busybox", "all"), default="uvloop"
    )
    parser.add_argument("--workers", type=int, default=1, help="also run Ferry with N processes")
    parser.add_argument("--floor", action="store_true", help="also run the minimal relay")
    parser.add_argument(
        "--pure", action="store_true", help="also run Ferry without its compiled hot path"
    )
    parser.add_argument(
        "--tcp", action="store_true", help="also relay raw TCP: HAProxy mode tcp, Ferry's TCP edge"
    )
    parser.add_argument(
        "--against", help="also run the Ferry of another checkout (a tree with make native)"
    )
    parser.add_argument("--profile", help="run Ferry (1 process) under cProfile, stats to FILE")
    parser.add_argument("--serve-backend", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-ferry", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_backend:
        serve_backend(args.serve_backend)
        return
    if args.serve_ferry:
        serve_ferry(*args.serve_ferry)
        return
    if args.serve_floor:
        serve_floor(*args.serve_floor)
        return
    if args.profile:
        args.profile = str(Path(args.profile).resolve())

    print(f"proxy bench: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, 100-byte body, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    from ferry.proxy.native import build_is_current

    print(f"ferry's hot path: {'compiled (mypyc)' if build_is_current() else 'pure Python'}")
    kinds = ("uvloop", "nginx", "busybox") if args.backend == "all" else (args.backend,)
    with tempfile.TemporaryDirectory(prefix="ferry-proxy-bench-") as tmp:
        results = {kind: bench_backend(kind, args, Path(tmp)) for kind in kinds}
    for kind, rounds in results.items():
        report(kind, rounds)


if __name__ == "__main__":
    main()
