"""Benchmark: HTTPS through Ferry's edge against HAProxy terminating TLS, same certificate,
same backend, same run.

Run::

    .venv/bin/python bench/https_bench.py [--duration 5 --connections 50 --threads 2
        --rounds 3]

Setups, each loaded in turn by ``wrk`` on 127.0.0.1, ``--rounds`` times (ratios
per round, reported as the median):

- ``haproxy-eq``: HAProxy 2.6 (``nbthread 1``) terminating TLS with the
  certificate the edge serves, doing the edge's per-request header work
  (``bench/proxy_bench.py``'s ``haproxy-eq``, with ``X-Forwarded-Proto:
  https``), in front of the backend;
- ``ferry``: ``EdgeProxy`` (one process, uvloop) with its TLS listener and the
  same certificate (EC P-256, ``*.ferry.test`` + ``localhost``, signed by a
  throwaway cluster CA), in front of the same backend.

Two loads per setup: ``keep-alive`` (``wrk -c50``: TLS sessions reused for
many requests — HTTPS req/s and p99) and ``new handshake per request``
(``Connection: close`` on every request: each request is a new TCP
connection and a TLS handshake — new handshakes per second; wrk keeps each
connection's TLS session, so both proxies resume with the TLS 1.3 ticket they
issued: PSK + ECDHE, no certificate signature). The same two loads over
plain HTTP (``haproxy-eq`` without ``ssl``, the edge's port 80) are the
reference: what the proxies cost without TLS. wrk sends SNI ``localhost``
(the URL's host) and ``Host: bench.ferry.test``; it offers no ALPN, so both
proxies speak HTTP/1.1; TLS 1.3 with X25519 (both sides' OpenSSL default).

Figures: req/s, p50/p99 (wrk), CPU per request of the proxy process
(utime+stime from /proc), and of the whole machine. The hot path runs
compiled only when ``make native`` built the current sources (the line
before the table says which). Every process is started and stopped by PID.
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
sys.path.insert(0, str(ROOT / "bench"))

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
from proxy_bench import HAPROXY_EQ_CFG  # noqa: E402

ME = "https_bench.py"
_ORDER = ("haproxy-eq", "ferry", "ferry@base")  # the columns of every round, in order
SNI = "localhost"  # resolves to 127.0.0.1 for wrk, and is on the certificate
HAPROXY_TLS_CFG = (
    HAPROXY_EQ_CFG.replace(
        "    bind 127.0.0.1:{port}\n",
        "    bind 127.0.0.1:{port} ssl crt {crt} alpn http/1.1 ssl-min-ver TLSv1.2\n",
    )
    .replace("X-Forwarded-Proto http\n", "X-Forwarded-Proto https\n")
    .replace("global\n", "global\n    tune.ssl.default-dh-param 2048\n")
)


def serve_backend(port: int) -> None:
    from proxy_bench import serve_backend as serve

    serve(port)


def serve_ferry_tls(port: int, http_port: int, backend_port: int, cert: Path, key: Path) -> None:
    """Ferry's edge with a TLS listener on ``port`` and HTTP on ``http_port``."""
    import asyncio
    import signal

    import uvloop

    from ferry.proxy.daemon import freeze_startup_heap
    from ferry.proxy.limits import ProxyLimits
    from ferry.proxy.server import EdgeProxy
    from ferry.tls.cluster_certs import edge_tls_from_files
    from ferry.tls.edge_tls import static_source

    table = bench_table(backend_port, (80, 443), ("http", "tls"))
    tls = static_source(edge_tls_from_files(cert, key))

    async def main() -> None:
        proxy = EdgeProxy(
            "ams", "ferry.test", lambda: table, {},
            http_listen=("127.0.0.1", http_port), https_listen=("127.0.0.1", port), tls=tls,
            limits=ProxyLimits(upstream_idle_per_backend=256),
        )  # fmt: skip
        done = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
        await proxy.start()
        freeze_startup_heap()  # as ``ferry proxy`` does once started
        try:
            await done.wait()
        finally:
            await proxy.stop()

    uvloop.run(main())


def run_wrk(
    name: str, port: int, args: argparse.Namespace, pid: int, *, close: bool, scheme: str = "https"
) -> Figures:
    cmd = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-H", f"Host: {HOST_HEADER}", *(["-H", "Connection: close"] if close else []),
        f"{scheme}://{SNI}:{port}/",
    ]  # fmt: skip
    figures, out = wrk(name, cmd, pid, args.duration)
    errors = re.search(r"Non-2xx or 3xx responses: \d+", out)
    if errors or not figures.requests:
        sys.exit(f"https bench: {name} answered with errors ({out.strip()}); fix the setup")
    for problem in re.findall(r"Socket errors: .*", out):
        print(f"  note: {name}: {problem}", flush=True)  # with close, wrk counts some reads
    return figures


def handshake_terms(name: str, port: int, tmp: Path) -> dict[str, str]:
    """What a client gets from ``port``, by ``openssl s_client`` (a full handshake, then
    one resuming its session): version, cipher, key-exchange group, tickets, resumption.

    The loads compare like for like only when these match (the tickets sent on a full
    handshake aside: wrk makes one full handshake per connection, then resumes)."""
    session = tmp / f"{name}.session"
    request = f"GET / HTTP/1.1\r\nHost: {HOST_HEADER}\r\nConnection: close\r\n\r\n"
    terms: dict[str, str] = {}
    for step, option in (("full", "-sess_out"), ("next", "-sess_in")):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SNI,
             "-msg", "-ign_eof", option, str(session)],
            input=request, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        kind = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
        group = re.search(r"^Server Temp Key: (\w+)", out, re.M)
        if kind is None or "HTTP/1.1 200" not in out:
            sys.exit(f"https bench: {name} did not answer over TLS ({out[-500:]!r})")
        terms[f"{step} handshake"] = kind.group(1).lower()
        terms["version"], terms["cipher"] = kind.group(2), kind.group(3)
        terms["group"] = group.group(1) if group else "?"
        terms[f"tickets after a {step} handshake"] = str(out.count("NewSessionTicket"))
    return terms


def check_like_for_like(terms: dict[str, dict[str, str]]) -> None:
    """Print each proxy's terms; stop when a proxy's TLS differs from HAProxy's in what
    costs CPU per handshake (version, cipher, group, resuming)."""
    reference = terms["haproxy-eq"]
    for name, got in terms.items():
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in got.items()), flush=True)
        for key in ("version", "cipher", "group", "full handshake", "next handshake"):
            if got[key] != reference[key]:
                sys.exit(f"https bench: not like for like: {name} {key} {got[key]} vs "
                         f"haproxy-eq {reference[key]}")  # fmt: skip


def make_certificate(tmp: Path) -> tuple[Path, Path, Path]:
    """The edge's certificate (chain, key) and HAProxy's crt file (chain + key)."""
    from ferry.tls.ca import ClusterCa

    leaf = ClusterCa.create("bench CA").issue(("*.ferry.test", "ferry.test", SNI))
    cert, key, crt = tmp / "edge.pem", tmp / "edge-key.pem", tmp / "haproxy.pem"
    cert.write_bytes(leaf.chain_pem)
    key.write_bytes(leaf.key_pem)
    crt.write_bytes(leaf.chain_pem + leaf.key_pem)
    return cert, key, crt


def bench(args: argparse.Namespace, tmp: Path) -> dict[str, list[list[Figures]]]:
    me = [sys.executable, str(Path(__file__).resolve())]
    cert, key, crt = make_certificate(tmp)
    with processes() as procs:
        backend_port = free_port()
        procs.append(subprocess.Popen([*me, "--serve-backend", str(backend_port)]))
        haproxy_port, haproxy_http = free_port(), free_port()
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(
            HAPROXY_TLS_CFG.format(port=haproxy_port, backend_port=backend_port, crt=crt)
        )
        procs.append(subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(cfg)]))
        haproxy = procs[-1]
        plain = tmp / "haproxy-http.cfg"  # the same work over plain HTTP: TLS's share of the gap
        plain.write_text(HAPROXY_EQ_CFG.format(port=haproxy_http, backend_port=backend_port))
        procs.append(subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(plain)]))
        haproxy_plain = procs[-1]
        ferries: list[tuple[str, int, int, subprocess.Popen[bytes]]] = []
        trees = [("ferry", me)]
        if args.against:  # the same edge from another checkout: before/after, same run
            trees.append(("ferry@base", [sys.executable, str(args.against / "bench" / ME)]))
        for name, script in trees:
            port, http_port = free_port(), free_port()
            serve = [str(port), str(http_port), str(backend_port), str(cert), str(key)]
            procs.append(subprocess.Popen([*script, "--serve-ferry-tls", *serve]))
            ferries.append((name, port, http_port, procs[-1]))
        for port in (backend_port, haproxy_port, haproxy_http):
            wait_for_port(port)
        for _, port, http_port, _ in ferries:
            wait_for_port(port)
            wait_for_port(http_port)
        time.sleep(0.5)
        terms = {"haproxy-eq": handshake_terms("haproxy-eq", haproxy_port, tmp)}
        for name, port, _, _ in ferries:
            terms[name] = handshake_terms(name, port, tmp)
        print("TLS as each proxy answers (openssl s_client):")
        check_like_for_like(terms)
        results: dict[str, list[list[Figures]]] = {
            "https keep-alive": [],
            "https new handshake per request (Connection: close)": [],
            "plain http keep-alive (reference: the same proxies without TLS)": [],
            "plain http new connection per request (reference)": [],
        }
        loads = list(results)
        for round_ in range(args.rounds):
            # Alternate which ferry runs first: each round's noise falls on both alike.
            order = ferries if round_ % 2 == 0 else ferries[::-1]
            for load, close in ((loads[0], False), (loads[1], True)):
                runs = [run_wrk("haproxy-eq", haproxy_port, args, haproxy.pid, close=close)]
                runs += [run_wrk(n, p, args, f.pid, close=close) for n, p, _, f in order]
                results[load].append(sorted(runs, key=lambda f: _ORDER.index(f.name)))
            for load, close in ((loads[2], False), (loads[3], True)):
                runs = [
                    run_wrk(
                        "haproxy-eq", haproxy_http, args, haproxy_plain.pid,
                        close=close, scheme="http",
                    )
                ]  # fmt: skip
                runs += [
                    run_wrk(n, h, args, f.pid, close=close, scheme="http") for n, _, h, f in order
                ]
                results[load].append(sorted(runs, key=lambda f: _ORDER.index(f.name)))
        return results


def report(load: str, rounds: list[list[Figures]]) -> None:
    print(f"\n## {load}")
    print(
        f"{'setup':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu µs/req':>11} "
        f"{'user':>6} {'sys':>6} {'machine µs/req':>15} {'connects/s':>11}"
    )
    names = [f.name for f in rounds[0]]
    for index, name in enumerate(names):
        runs = [r[index] for r in rounds]
        med = lambda values: statistics.median(values)  # noqa: E731
        print(
            f"{name:<12} {med([f.rps for f in runs]):>9.0f} {med([f.p50_ms for f in runs]):>8.2f} "
            f"{med([f.p99_ms for f in runs]):>8.2f} "
            f"{med([f.cpu_us or 0.0 for f in runs]):>11.1f} "
            f"{med([f.user_us or 0.0 for f in runs]):>6.1f} "
            f"{med([f.sys_us or 0.0 for f in runs]):>6.1f} "
            f"{med([f.machine_us for f in runs]):>15.1f} "
            f"{med([f.connects_per_s for f in runs]):>11.0f}"
        )
    for index in range(1, len(names)):
        rps = statistics.median(r[index].rps / r[0].rps for r in rounds)
        cpu = statistics.median((r[0].cpu_us or 0.0) / (r[index].cpu_us or 1.0) for r in rounds)
        print(
            f"{names[index]} / haproxy-eq: req/s {rps:.2f}x; "
            f"CPU per request (haproxy/{names[index]}) {cpu:.2f}x"
        )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-backend":
        serve_backend(int(sys.argv[2]))
        return
    if len(sys.argv) > 6 and sys.argv[1] == "--serve-ferry-tls":
        ports = [int(a) for a in sys.argv[2:5]]
        serve_ferry_tls(*ports, Path(sys.argv[5]), Path(sys.argv[6]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_wrk_options(parser)
    parser.add_argument(
        "--against", type=Path, help="also run the edge of another checkout (ferry@base)"
    )
    args = parser.parse_args()
    from ferry.proxy.native import build_is_current

    native = build_is_current() and os.environ.get("FERRY_PURE_PYTHON") != "1"
    print(
        f"https bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.node()} ({os.cpu_count()} cores), Python {platform.python_version()}; "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} rounds; "
        f"ferry hot path {'compiled (mypyc)' if native else 'pure Python'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ferry-https-bench-") as tmp:
        results = bench(args, Path(tmp))
    for load, rounds in results.items():
        report(load, rounds)


if __name__ == "__main__":
    main()
