"""Benchmark: HTTP/2 through Ferry's edge over TLS, against HTTP/1.1 over TLS and HAProxy.

Run::

    .venv/bin/python bench/h2_bench.py [--duration 5 --rounds 3 --connections 10
        --streams 10 --h1-connections 50 --pure]

Every setup serves the same backend (``proxy_bench.serve_backend``: uvloop +
httptools, 100-byte body, keep-alive) behind TLS terminated with the same
certificate (a P-256 key made with ``openssl`` for this run), all on
127.0.0.1 and this machine's cores, loaded in turn with ``h2load`` (one
thread) for ``--duration`` seconds after a one-second warm-up, ``--rounds``
times:

- ``ferry-h2``: Ferry's edge (``HttpEdge``, one process on uvloop) on a TLS
  listener choosing ``H2Connection`` or ``ClientConnection`` by ALPN, h2load
  with ``--connections`` connections of ``--streams`` concurrent streams each;
- ``ferry-h1``: the same listener and edge, HTTP/1.1 (``h2load --h1``),
  ``--h1-connections`` connections, one request at a time each;
- ``haproxy-h2`` / ``haproxy-h1``: HAProxy 2.6 (``nbthread 1``) with
  ``bind ... ssl crt ... alpn h2,http/1.1``, configured to do the edge's
  per-request header work (``proxy_bench.HAPROXY_EQ_CFG``), same loads.

Figures: requests/s (h2load's), mean latency, and the proxy's CPU time per
request (utime+stime from /proc/<pid>/stat, before/after). The TLS listener
here is the benchmark's own (the production one is the edge's TLS module);
the per-request path behind it is the production code. ``--pure`` runs the
edge with FERRY_PURE_PYTHON=1 (otherwise the compiled hot path when
``make native`` built it for these sources).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from loadtools import (  # noqa: E402
    HOST_HEADER,
    bench_table,
    cpu_times,
    free_port,
    processes,
    wait_for_port,
)
from proxy_bench import HAPROXY_EQ_CFG  # noqa: E402


def serve_ferry_tls(port: int, backend_port: int, cert: str, key: str) -> None:
    """Ferry's edge behind a TLS listener that picks HTTP/2 or HTTP/1.1 by ALPN."""
    import asyncio
    import ssl

    import uvloop

    from ferry.proxy.connection import ClientConnection
    from ferry.proxy.h2conn import H2Connection
    from ferry.proxy.http import HttpEdge
    from ferry.proxy.limits import ProxyLimits

    table = bench_table(backend_port, (443,), ("tls", "http"))
    edge = HttpEdge(
        "ams", "ferry.test", lambda: table, {}, public_port=443,
        limits=ProxyLimits(upstream_idle_per_backend=256),
    )  # fmt: skip

    class ByAlpn(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            ssl_object = transport.get_extra_info("ssl_object")
            h2 = ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"
            protocol = H2Connection(edge) if h2 else ClientConnection(edge, tls=True)
            transport.set_protocol(protocol)
            protocol.connection_made(transport)

    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        loop = asyncio.get_running_loop()
        server = await loop.create_server(ByAlpn, "127.0.0.1", port, ssl=ctx, backlog=1024)
        async with server:
            while True:
                await asyncio.sleep(edge.limits.tick)
                edge.sweep()

    uvloop.run(main())


HAPROXY_TLS_CFG = (
    HAPROXY_EQ_CFG.replace(
        "    bind 127.0.0.1:{port}\n",
        "    bind 127.0.0.1:{port} ssl crt {bundle} alpn h2,http/1.1\n",
    )
    .replace("X-Forwarded-Proto http", "X-Forwarded-Proto https")
    # the authority carries the port here (h2load sends the URI's)
    .replace("hdr(host) -i", "req.hdr(host),field(1,:) -i")
)


def run_h2load(port: int, pid: int, h1: bool, args: argparse.Namespace) -> dict[str, float]:
    conns = args.h1_connections if h1 else args.connections
    cmd = [
        "h2load", "-t1", f"-c{conns}", f"-m{1 if h1 else args.streams}",
        f"-D{args.duration}", "--warm-up-time=1",
        f"https://{HOST_HEADER}:{port}/", f"--connect-to=127.0.0.1:{port}",
    ] + (["--h1"] if h1 else [])  # fmt: skip
    before = cpu_times(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30).stdout
    after = cpu_times(pid)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    proto = re.search(r"Application protocol: (\S+)", out)
    if not (done and rps and mean and proto):
        raise RuntimeError(f"h2load failed: {out[-800:]}")
    if int(done.group(2)) != int(done.group(1)) or proto.group(1) != ("http/1.1" if h1 else "h2"):
        raise RuntimeError(f"h2load saw failures or another protocol: {out[-800:]}")
    requests = int(done.group(1))
    unit = 1000.0 if mean.group(1).endswith("us") else 1.0
    mean_ms = float(re.sub(r"[a-z]+$", "", mean.group(1))) / unit
    if mean.group(1).endswith("s") and not mean.group(1).endswith(("ms", "us")):
        mean_ms *= 1000.0
    cpu = (after[0] + after[1] - before[0] - before[1]) / max(requests, 1) * 1e6
    return {"rps": float(rps.group(1)), "mean_ms": mean_ms, "cpu_us": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--h1-connections", type=int, default=50)
    parser.add_argument("--pure", action="store_true", help="run the edge as pure Python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-h2-bench-") as tmp:
        cert, key, bundle = (str(Path(tmp) / n) for n in ("cert.pem", "key.pem", "bundle.pem"))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
             "-days", "1", "-subj", f"/CN={HOST_HEADER}",
             "-addext", f"subjectAltName=DNS:{HOST_HEADER}"],
            check=True, capture_output=True,
        )  # fmt: skip
        Path(bundle).write_text(Path(cert).read_text() + Path(key).read_text())
        env = {**os.environ, "PYTHONPATH": f"{HERE.parent}{os.pathsep}{HERE}"}
        if args.pure:
            env["FERRY_PURE_PYTHON"] = "1"

        with processes() as procs:

            def spawn(argv: list[str], port: int) -> int:
                proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
                procs.append(proc)
                wait_for_port(port)
                return proc.pid

            backend = free_port()
            code = f"import proxy_bench as b; b.serve_backend({backend})"
            spawn([sys.executable, "-c", code], backend)
            ferry = free_port()
            code = f"import h2_bench as b; b.serve_ferry_tls({ferry}, {backend}, {cert!r}, {key!r})"
            ferry_pid = spawn([sys.executable, "-c", code], ferry)
            haproxy = free_port()
            cfg = Path(tmp) / "haproxy.cfg"
            cfg.write_text(
                HAPROXY_TLS_CFG.format(port=haproxy, backend_port=backend, bundle=bundle)
            )
            haproxy_pid = spawn(["/usr/sbin/haproxy", "-db", "-f", str(cfg)], haproxy)
            native = subprocess.run(
                [sys.executable, "-c", "import ferry.proxy as p; print(p.NATIVE)"],
                env=env, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            setups = [
                ("ferry-h2", ferry, ferry_pid, False), ("haproxy-h2", haproxy, haproxy_pid, False),
                ("ferry-h1", ferry, ferry_pid, True), ("haproxy-h1", haproxy, haproxy_pid, True),
            ]  # fmt: skip
            results: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in setups}
            for _ in range(args.rounds):
                for name, port, pid, h1 in setups:
                    results[name].append(run_h2load(port, pid, h1, args))
                    time.sleep(0.5)
    print(
        f"# h2_bench {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}, "
        f"{os.cpu_count()} cores; edge compiled: {native}; h2load -t1 -D{args.duration}, "
        f"h2: -c{args.connections} -m{args.streams}, h1: -c{args.h1_connections} -m1; "
        f"median of {args.rounds} rounds; TLS 1.3 P-256, 100-byte body"
    )
    print(f"{'setup':<12}{'req/s':>10}{'mean ms':>10}{'proxy CPU µs/req':>18}{'vs haproxy':>12}")
    for name, *_ in setups:
        rows = results[name]
        rps = statistics.median(r["rps"] for r in rows)
        base = statistics.median(r["rps"] for r in results["haproxy-" + name.split("-")[1]])
        print(
            f"{name:<12}{rps:>10.0f}{statistics.median(r['mean_ms'] for r in rows):>10.2f}"
            f"{statistics.median(r['cpu_us'] for r in rows):>18.1f}{rps / base:>11.2f}x"
        )


if __name__ == "__main__":
    main()
