"""Benchmark: what the WAF costs a benign request at the edge, and whether it stalls others.

Run::

    /work/main/.venv/bin/python bench/waf_cost_bench.py [--requests 2000 --rounds 3
        --duration 5 --connections 16 --stall]

Setups, each one ``EdgeProxy`` process (uvloop) in front of the same minimal
uvloop + httptools backend (100-byte body, keep-alive), all on 127.0.0.1:

- ``off``: the app has no ``[waf]`` (the edge's request path checks one attribute);
- ``pl1``: ``[waf] mode = "block"``, paranoia 1 (CRS 3.3, ``WorkerEngine``);
- ``pl4``: the same at paranoia 4.

Latency: one keep-alive connection sends ``--requests`` benign GETs with a
browser's headers one after another (a separate client process); p50 and
p99 per setup, and the WAF's added latency as the difference to ``off`` in
the same round. Rounds interleave the setups so load drifts hit all alike.
Throughput: ``wrk -t1 -c<connections> -d<duration>`` per setup (req/s, p99;
``--duration 0`` skips it). CPU per request: user + system time of the edge
and its WAF workers over a run, divided by its requests.

``--baseline TREE`` adds PL1 and PL4 edges running another checkout's code (e.g. ``main``), so a
change is measured against what it replaces in the same run. The engine
in-process line gives the same request's phases 1-2 hot (back to back) and
cold (64 MB of memory touched before each), same run, with the rule set as
the edge loads it (pruned above the paranoia level) and, at PL1, whole,
interleaved.

``--stall``: does rule evaluation stall other connections? Connection A
sends requests that take the engine long (a 256 KiB form body at paranoia
4) while connection B sends small requests to an app without a WAF on the
same edge; B's p50/p99 are reported with the engine in worker processes
(``workers``, what the edge uses), on the event loop (``inline``) and in a
thread of the edge's process (``thread``); ``workers-waf``: B's app is
inspected too (PL1 block, its own rule set), so B's requests must not wait
behind A's in a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("WAF_BENCH_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

BODY = b"x" * 99 + b"\n"
BENIGN = (
    b"GET /products/list?page=2&sort=name HTTP/1.1\r\nHost: %s.ferry.test\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n"
    b"Cookie: session=4f2a9c1e8b7d; theme=dark\r\nConnection: keep-alive\r\n\r\n"
)
HEAVY_BODY = b"&".join(b"field%d=%s" % (i, b"lorem ipsum dolor " * 8) for i in range(1800))[
    : 256 * 1024
]
HEAVY = (
    b"POST /submit HTTP/1.1\r\nHost: heavy.ferry.test\r\nUser-Agent: Mozilla/5.0\r\n"
    b"Accept: */*\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: %d\r\n\r\n" % len(HEAVY_BODY) + HEAVY_BODY
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def serve_backend(port: int) -> None:
    import httptools
    import uvloop

    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + BODY

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
        server = await asyncio.get_running_loop().create_server(Static, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


class ThreadEngine:
    """The engine in one thread of the edge's process (measured, not used: GIL held)."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from ferry.waf.engine import InlineEngine

        self.inline = InlineEngine()
        self.pool = ThreadPoolExecutor(1)

    async def load(self, config: object) -> None:
        await self._run(self.inline.load(config))  # type: ignore[arg-type]

    async def request(self, config: object, request: object) -> object:
        return await self._run(self.inline.request(config, request))  # type: ignore[arg-type]

    async def finish(self, inspection: object, response: object) -> object:
        return await self._run(self.inline.finish(inspection, response))  # type: ignore[arg-type]

    async def _run(self, coro: object) -> object:
        def step() -> object:
            return asyncio.run(coro)  # type: ignore[arg-type]

        return await asyncio.get_running_loop().run_in_executor(self.pool, step)

    async def close(self) -> None:
        self.pool.shutdown()


def serve_edge(port: int, backend_port: int, mode: str, paranoia: int, engine: str) -> None:
    import uvloop

    from ferry.model import Concurrency, DesiredState, MachineState
    from ferry.model.machine_waf import WafConfig
    from ferry.proxy.limits import ProxyLimits
    from ferry.proxy.routes import Backend, RouteTable, ServicePorts
    from ferry.proxy.server import EdgeProxy
    from ferry.waf.engine import InlineEngine
    from ferry.waf.workers import WorkerEngine

    service = ServicePorts(
        internal_port=backend_port, ports=(80,), handlers=("http",),
        concurrency=Concurrency(type="requests", soft_limit=1000, hard_limit=2000),
    )  # fmt: skip
    apps = {
        app: (Backend(f"m-{app}", f"m-{app}-i", app, "ams", "127.0.0.1", MachineState.STARTED,
                      DesiredState.STARTED, (service,)),)
        for app in ("bench", "heavy")
    }  # fmt: skip
    waf = {}
    if mode != "off":
        config = WafConfig(mode=mode, paranoia=paranoia, body_limit=512 * 1024)  # type: ignore[arg-type]
        waf = {"bench": config, "heavy": config} if engine == "stall" else {"bench": config}
    if engine.startswith("stall-"):
        waf = {"heavy": WafConfig(mode="detect", paranoia=4, body_limit=512 * 1024)}
    if engine == "stall-workers-waf":  # B inspected too, with its own rule set
        waf["bench"] = WafConfig(mode="block", paranoia=1)
    table = RouteTable(1, apps, {}, waf)
    kind = engine.removeprefix("stall-").removesuffix("-waf")
    rule_engine = {"workers": WorkerEngine, "inline": InlineEngine, "thread": ThreadEngine}[kind]()

    async def main() -> None:
        proxy = EdgeProxy(
            "ams", "ferry.test", lambda: table, {}, http_listen=("127.0.0.1", port),
            limits=ProxyLimits(upstream_idle_per_backend=256), waf_engine=rule_engine,  # type: ignore[arg-type]
        )  # fmt: skip
        await proxy.start()
        if proxy.waf is not None:
            for _ in range(400):
                await proxy.waf.settled()
                if proxy.waf.active or not waf:
                    break
                await asyncio.sleep(0.05)
        await asyncio.Event().wait()

    uvloop.run(main())


def _read_response(sock: socket.socket, buffer: bytearray) -> None:
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[:end]).lower()
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(buffer) >= end + 4 + length:
                status = head[9:12]
                if status != b"200":
                    raise RuntimeError(f"status {status!r}")
                del buffer[: end + 4 + length]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        buffer += chunk


def latencies(port: int, request: bytes, count: int) -> list[float]:
    """``count`` requests one after another on one connection; seconds each."""
    out = []
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(50):  # warm-up
            sock.sendall(request)
            _read_response(sock, buffer)
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            _read_response(sock, buffer)
            out.append(time.perf_counter() - started)
    return out


def wait_for_waf(port: int, timeout: float = 60.0) -> None:
    """Until an SQL injection gets 403: the edge's workers have compiled the rule set."""
    attack = b"GET /?id=1%27%20OR%201=1-- HTTP/1.1\r\nHost: bench.ferry.test\r\n\r\n"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(attack)
            if sock.recv(65536).startswith(b"HTTP/1.1 403"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"the edge on {port} does not block an SQL injection")


def timed_latencies(port: int, request: bytes, seconds: float) -> list[float]:
    """Requests one after another on one connection for ``seconds``; seconds each."""
    out: list[float] = []
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            sock.sendall(request)
            _read_response(sock, buffer)
            out.append(time.perf_counter() - started)
    return out


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and the maximum, in ms."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] * 1e3, ordered[int(n * 0.99)] * 1e3, ordered[-1] * 1e3


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args], env={**os.environ, **(env or {})})


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children now alive (the edge and its workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def setups_of(args: argparse.Namespace) -> dict[str, tuple[str, int, dict[str, str]]]:
    """name -> (mode, paranoia, environment of the edge): the WAF off, PL1 and PL4, and
    with ``--baseline`` PL1 and PL4 on that checkout's code (its workers inherit it)."""
    setups: dict[str, tuple[str, int, dict[str, str]]] = {
        "off": ("off", 1, {}), "pl1": ("block", 1, {}), "pl4": ("block", 4, {}),
    }  # fmt: skip
    if args.baseline:
        tree = str(Path(args.baseline).resolve())
        env = {"WAF_BENCH_TREE": tree, "PYTHONPATH": tree}
        setups["pl1 baseline"] = ("block", 1, env)
        setups["pl4 baseline"] = ("block", 4, env)
    return setups


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(port: int, duration: int, connections: int) -> tuple[float, str]:
    script = Path("/tmp") / f"waf-bench-{os.getpid()}.lua"
    headers = BENIGN.split(b"\r\n")[1:-2]
    lines = [f'wrk.headers["{h.split(b": ")[0].decode()}"] = "{h.split(b": ", 1)[1].decode()}"'
             for h in headers]  # fmt: skip
    script.write_text("\n".join(lines).replace("%s", "bench") + "\n")
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
             f"http://127.0.0.1:{port}/products/list?page=2&sort=name"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        script.unlink(missing_ok=True)
    rps = float(out.split("Requests/sec:")[1].split()[0])
    p99 = out.split("99%")[1].split()[0]
    return rps, p99


def cost(args: argparse.Namespace) -> None:
    backend_port = free_port()
    backend = start(["--serve-backend", str(backend_port)])
    setups = setups_of(args)
    edges: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        wait_for_port(backend_port)
        for name, (mode, paranoia, env) in setups.items():
            port = free_port()
            edges[name] = (start(["--serve-edge", str(port), str(backend_port), mode,
                                  str(paranoia), "workers"], env), port)  # fmt: skip
        for name, (_, port) in edges.items():
            wait_for_port(port)
            if name != "off":
                wait_for_waf(port)
        request = BENIGN % b"bench"
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
        cpu: dict[str, list[float]] = {name: [] for name in setups}
        for _ in range(args.rounds):
            for name, (proc, port) in edges.items():
                before = cpu_seconds(proc.pid)
                rows[name].append(quantiles(latencies(port, request, args.requests))[:2])
                cpu[name].append((cpu_seconds(proc.pid) - before) / (args.requests + 50))
        print(f"latency, {args.requests} sequential benign requests x {args.rounds} rounds "
              f"(median of rounds), {platform.node()}, load {os.getloadavg()[0]:.1f}, "
              f"{time.strftime('%H:%M:%S UTC', time.gmtime())}")  # fmt: skip
        base = [r[0] for r in rows["off"]]
        base99 = [r[1] for r in rows["off"]]
        for name in setups:
            p50 = statistics.median(r[0] for r in rows[name])
            p99 = statistics.median(r[1] for r in rows[name])
            added = statistics.median(r[0] - b for r, b in zip(rows[name], base, strict=True))
            added99 = statistics.median(r[1] - b for r, b in zip(rows[name], base99, strict=True))
            rounds = " ".join(f"{r[0] - b:+.2f}" for r, b in zip(rows[name], base, strict=True))
            print(f"  {name:14} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  added p50 {added:+.3f} ms"
                  f"  added p99 {added99:+.3f} ms  (rounds {rounds}; edge+workers CPU "
                  f"{statistics.median(cpu[name]) * 1e3:.2f} ms/request)")  # fmt: skip
        print("engine in-process (the reference: phases 1-2 of the same request, same rule"
              " set, no edge), hot: back to back; cold: 64 MB touched before each")  # fmt: skip
        for name, (mode, paranoia, _) in setups.items():
            if name not in ("pl1", "pl4"):
                continue
            prunes = (True, False) if paranoia < 4 else (True,)  # PL4: nothing is pruned
            found = engine_in_process(request, mode, paranoia, args.requests // 3, prunes)
            for prune, (hot, cold) in found.items():
                label = f"{name} {'pruned' if prune else 'whole'}"
                print(f"  {label:10} hot p50 {hot[0]:6.3f} ms  p99 {hot[1]:6.3f} ms;  cold p50 "
                      f"{cold[0]:6.3f} ms  p99 {cold[1]:6.3f} ms")  # fmt: skip
        if args.duration:
            print(f"throughput, wrk -t1 -c{args.connections} -d{args.duration}s")
            for name, (proc, port) in edges.items():
                before = cpu_seconds(proc.pid)
                rps, p99 = wrk(port, args.duration, args.connections)
                per = (cpu_seconds(proc.pid) - before) / max(rps * args.duration, 1)
                print(f"  {name:14} {rps:8.0f} req/s  p99 {p99}  edge+workers CPU "
                      f"{per * 1e3:.2f} ms/request")  # fmt: skip
    finally:
        for proc, _ in edges.values():
            stop(proc)
        stop(backend)


CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 80)


def engine_in_process(
    request: bytes, mode: str, paranoia: int, count: int, prunes: tuple[bool, ...]
) -> dict[bool, tuple[tuple[float, float], tuple[float, float]]]:
    """p50/p99 ms of phases 1-2 for ``request`` in this process (what the edge's workers
    run), hot and cold, per rule set: ``prune`` True as the edge loads it (pruned above
    the paranoia level), False whole (as the differential's reference loads it).

    The rule sets take turns, three requests each: the first after 64 MB of memory
    was touched (cold: more than the L3 cache; what the client, the edge, the backend
    and the machine's other tenants do to the caches between two requests), the
    third right after the second (hot)."""
    from ferry.model.machine_waf import WafConfig
    from ferry.waf.engine import ModSecurityCore, WafRequest, config_key

    cores = [ModSecurityCore(prune=prune) for prune in prunes]
    key = config_key(WafConfig(mode=mode, paranoia=paranoia))  # type: ignore[arg-type]
    for core in cores:
        core.load(key)
    line, _, rest = request.partition(b"\r\n")
    method, uri, _version = line.split(b" ")
    headers = tuple(
        (name, value.lstrip())
        for name, _, value in (h.partition(b":") for h in rest.split(b"\r\n") if h)
    )
    junk = bytearray(64 << 20)
    times: dict[tuple[int, bool], list[float]] = {}
    for i in range(count * len(cores)):
        which, step = (i // 3) % len(cores), i % 3
        if step == 0:
            junk[::64] = bytes([i & 255]) * (len(junk) // 64)
        started = time.perf_counter()
        seen = WafRequest(str(i), CLIENT, SERVER, method, uri, "1.1", headers)
        txn, _status = cores[which].request(key, seen)
        elapsed = time.perf_counter() - started
        cores[which].finish(txn, 0, None)
        if step != 1:
            times.setdefault((which, step == 0), []).append(elapsed)
    return {
        prune: (quantiles(times[(n, False)])[:2], quantiles(times[(n, True)])[:2])
        for n, prune in enumerate(prunes)
    }


def stall(args: argparse.Namespace) -> None:
    backend_port = free_port()
    backend = start(["--serve-backend", str(backend_port)])
    try:
        wait_for_port(backend_port)
        print("stall: B's small requests (no WAF; workers-waf: PL1 block) while A sends"
              " 256 KiB forms (PL4 detect)")  # fmt: skip
        for kind in ("workers", "workers-waf", "inline", "thread"):
            port = free_port()
            edge = start(["--serve-edge", str(port), str(backend_port), "off", "1",
                          f"stall-{kind}"])  # fmt: skip
            try:
                wait_for_port(port)
                if kind == "workers-waf":
                    wait_for_waf(port)
                time.sleep(1.0)
                quiet = quantiles(timed_latencies(port, BENIGN % b"bench", 3.0))
                done = Path(f"/tmp/waf-bench-heavy-{os.getpid()}")
                heavy = subprocess.Popen(
                    [sys.executable, __file__, "--heavy-client", str(port), str(done)]
                )
                time.sleep(0.5)
                busy = quantiles(timed_latencies(port, BENIGN % b"bench", 8.0))
                stop(heavy)
                count = done.read_text() if done.exists() else "0"
                done.unlink(missing_ok=True)
                print(f"  {kind:11} B alone p50 {quiet[0]:.3f} p99 {quiet[1]:.3f} ms; "
                      f"during A p50 {busy[0]:.3f} p99 {busy[1]:.3f} max {busy[2]:.1f} ms "
                      f"(A: {count} forms inspected in ~8.5 s)")  # fmt: skip
            finally:
                stop(edge)
    finally:
        stop(backend)


def heavy_client(port: int, done: Path) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buffer = bytearray()
        for n in range(100_000):
            sock.sendall(HEAVY)
            _read_response(sock, buffer)
            done.write_text(str(n + 1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-backend":
        serve_backend(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-edge":
        port, backend, mode, paranoia, engine = sys.argv[2:7]
        serve_edge(int(port), int(backend), mode, int(paranoia), engine)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--heavy-client":
        heavy_client(int(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stall", action="store_true", help="only the stall measurement")
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also PL1 and PL4 with the edge's code from another checkout",
    )
    args = parser.parse_args()
    if args.stall:
        stall(args)
    else:
        cost(args)


if __name__ == "__main__":
    main()
