"""Benchmark: what authorization costs a Machines API list call, by kind of token.

Run::

    .venv/bin/python bench/auth_bench.py [--seconds 3 --rounds 5 --connections 8
        --machines 20 --against TREE | --before REV]

One ``ferry server`` of this tree on loopback (its own temporary home,
SQLite, rate limits on but set far above the load so their bookkeeping is
measured and never refuses), with an organization ``acme``, its admin's user
token (from an accepted invitation), an app of ``acme`` with ``--machines``
machines (placed on a registered host; no agent runs, so they stay as
created) and a deploy token scoped to that app. ``wrk -t1 -c<connections>``
loads ``GET /v1/apps/<app>/machines`` for ``--seconds`` with:

(a) the operator's admin token;
(b) the org admin's user token;
(c) the scoped deploy token;
(d) "before": the same call with the admin token against a ``ferry server`` of
    another tree, the commit before organizations landed: ``--against TREE``
    (a checkout), or ``--before REV`` (cloned from this repository into a
    temporary directory); same machines, same app, its only organization.

Setups are interleaved round by round (a, b, c, d, then b, c, d, a, …: each
takes each place in turn) so drift and order hit all alike; ratios to (d)
are taken per round and reported as the median, both by req/s and by the
server's CPU per request (before's / this one's: above 1 is cheaper), the
steadier of the two on a machine shared with other load. Figures:
req/s, p50/p99 latency (wrk), and the server's CPU per request
(utime+stime of its process from /proc, divided by the requests wrk made).
Both servers run under this Python, pure Python (no mypyc build of the
server exists). Every process is started and stopped by PID; loopback only.

Then one client alternating request by request between the servers (before,
a, before, b, before, c, …: each request follows one to the other server, so
both pay the same process switch), ``--alternate N`` rounds, one keep-alive
connection per setup, a raw socket client of a few µs: latencies measured so
close together that the load of other processes hits every setup alike. Figures: median and mean
latency, and that client's req/s (1 / mean), ratios to "before".

Then in-process A/B (``--inproc N``): a fresh Python per tree and kind of
token builds the control plane's ASGI app over a temporary SQLite store, the
same app and machines, and an in-process client (httpx's ASGI transport)
sends N list calls; the figure is CPU time per request (client included,
no network, no other process in the path), runs alternating between the
trees three times, median reported.

Last, in this process: the authentication path alone (resolve the token,
spend its rate limit, decide the route) per request and kind of token, with
the cache warm and with it emptied before each request (what every request
paid before the cache): steady figures where the HTTP ones are noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
APP = "bench"
LIST = f"/v1/apps/{APP}/machines"


@dataclass
class Server:
    """A ``ferry server`` of ``tree`` on a free loopback port, under ``home``."""

    tree: Path
    home: Path
    extra: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
        for variable in ("FERRY_API_TOKEN", "FLY_API_TOKEN"):
            env.pop(variable, None)
        argv = [sys.executable, "-m", "ferry", "server", "--home", str(self.home)]
        argv += ["--listen", f"127.0.0.1:{self.port}", *self.extra]
        self.proc = subprocess.Popen(
            argv, env=env, cwd=self.home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise SystemExit(f"server of {self.tree} exited: {self.proc.stderr.read()!r}")
            try:
                if httpx.get(self.url + "/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit(f"server of {self.tree} did not answer in 30 s")

    @property
    def admin(self) -> str:
        return (self.home / "server" / "admin-token").read_text().strip()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def _call(server: Server, method: str, path: str, token: str, body: object = None) -> dict:  # type: ignore[type-arg]
    answer = httpx.request(
        method,
        server.url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=10,
    )
    if answer.status_code >= 300:
        raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text}")
    return answer.json() if answer.content else {}  # type: ignore[no-any-return]


def _populate(server: Server, org: str, token: str, machines: int) -> None:
    """A host with room, the app in ``org``, and ``machines`` machines on it."""
    host = {
        "id": "ams-1",
        "region": "ams",
        "address": "127.0.0.1",
        "cpus": 256,
        "memory_mb": 262144,
        "machine_subnet": "10.1.0.0/22",
    }
    _call(server, "POST", "/v1/hosts", server.admin, host)
    _call(server, "POST", "/v1/apps", token, {"app_name": APP, "org_slug": org})
    for _ in range(machines):
        body = {"config": {"image": "registry.local/bench:1"}, "region": "ams"}
        _call(server, "POST", f"/v1/apps/{APP}/machines", token, body)


def setup_current(server: Server, machines: int) -> dict[str, str]:
    """Organization, admin user token, app, deploy token: the three tokens by setup name."""
    made = _call(
        server, "POST", "/v1/orgs", server.admin, {"slug": "acme", "admin_email": "a@acme.test"}
    )
    invitation = made["admin_invitation"]["invitation"]
    user = _call(server, "POST", "/v1/invitations/accept", "", {"invitation": invitation})["token"]
    _populate(server, "acme", user, machines)
    body = {"kind": "deploy", "app_name": APP, "name": "bench"}
    deploy = _call(server, "POST", "/v1/tokens", user, body)["token"]
    return {"operator": server.admin, "org-admin": user, "deploy": deploy}


@dataclass
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float


def _ms(text: str) -> float:
    """wrk's latency (``850.00us``, ``12.33ms``, ``1.02s``, ``1.00m``) in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[found.group(2)]
    return float(found.group(1)) * scale


def load(server: Server, token: str, seconds: float, connections: int) -> Sample:
    """One wrk run; the token goes in a 0600 Lua script, never on wrk's command line."""
    script = server.home / "auth.lua"
    fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    cpu_before = server.cpu_seconds()
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    out = subprocess.run(
        [*argv, server.url + LIST], capture_output=True, text=True, check=True
    ).stdout
    cpu = server.cpu_seconds() - cpu_before
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    return Sample(rps, p50, p99, cpu / max(requests, 1) * 1e6)


_INPROC = """
import asyncio, sys, tempfile, time
from pathlib import Path
import httpx
from ferry.server import create_app
from ferry.store import SqliteStore
count, kind, machines = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = SqliteStore(Path(tempfile.mkdtemp()) / "state.db")
options = {}
if kind != "operator":
    from ferry.server.auth import RateLimits
    from ferry.server.ratelimit import RateLimit
    options["rate_limits"] = RateLimits(tokens=RateLimit(1e9, 10**6))
app = create_app(store, admin_token="adm", run_liveness=False, run_autoscaler=False, **options)
async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = {"Authorization": "Bearer adm"}
        host = {"id": "ams-1", "region": "ams", "address": "127.0.0.1", "cpus": 256,
                "memory_mb": 262144, "machine_subnet": "10.1.0.0/22"}
        await c.post("/v1/hosts", json=host, headers=admin)
        org, token = "personal", "adm"
        if kind != "operator":
            made = await c.post("/v1/orgs", json={"slug": "acme", "admin_email": "a@acme.test"},
                                headers=admin)
            plain = made.json()["admin_invitation"]["invitation"]
            user = await c.post("/v1/invitations/accept", json={"invitation": plain})
            org, token = "acme", user.json()["token"]
        await c.post("/v1/apps", json={"app_name": "bench", "org_slug": org},
                     headers={"Authorization": "Bearer " + token})
        if kind == "deploy":
            made = await c.post("/v1/tokens", json={"kind": "deploy", "app_name": "bench"},
                                headers=admin)
            token = made.json()["token"]
        auth = {"Authorization": "Bearer " + token}
        for _ in range(machines):
            body = {"config": {"image": "registry.local/bench:1"}, "region": "ams"}
            await c.post("/v1/apps/bench/machines", json=body, headers=admin)
        for _ in range(200):
            assert (await c.get("/v1/apps/bench/machines", headers=auth)).status_code == 200
        started = time.process_time()
        for _ in range(count):
            await c.get("/v1/apps/bench/machines", headers=auth)
        print((time.process_time() - started) / count * 1e6)
asyncio.run(main())
"""


def inproc(tree: Path, kind: str, count: int, machines: int) -> float:
    """CPU µs per in-process list call of ``tree``'s app with a token of ``kind``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", _INPROC, str(count), kind, str(machines)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


class RawClient:
    """One keep-alive HTTP/1.1 connection sending the list call with one token."""

    def __init__(self, server: Server, token: str) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", server.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (
            f"GET {LIST} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()

    def once(self) -> float:
        """Seconds for one request and its whole answer; SystemExit unless 200."""
        started = time.perf_counter()
        self.sock.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected answer: {head[:200]!r}")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += self.sock.recv(65536)
        return time.perf_counter() - started

    def close(self) -> None:
        self.sock.close()


def alternate(setups: list[tuple[str, Server, str]], count: int) -> dict[str, list[float]]:
    """``count`` rounds of one request per setup (and one of "before" ahead of each);
    the seconds each took, by setup."""
    clients = {name: RawClient(server, token) for name, server, token in setups}
    try:
        for client in clients.values():
            for _ in range(50):  # warm the connection and the server's caches
                client.once()
        times: dict[str, list[float]] = {name: [] for name in clients}
        # With "before" every request follows one to the other server (before, a, before,
        # b, …): a process switch before each, alike for both sides.
        order = [n for s in clients if s != "before" for n in ("before", s)]
        if "before" not in clients:
            order = list(clients)
        for _ in range(count):
            for name in order:
                times[name].append(clients[name].once())
        return times
    finally:
        for client in clients.values():
            client.close()


def auth_path_cost(home: Path, repeat: int = 20_000) -> dict[str, tuple[float, float]]:
    """Microseconds per request of this tree's authentication path by kind of token:
    ``(cache warm, cache emptied before each request)``."""
    sys.path.insert(0, str(ROOT))
    from ferry.model.access import Role, TokenKind
    from ferry.server.app import create_app
    from ferry.server.auth import RateLimits
    from ferry.server.authz import OPERATOR, check, route_need
    from ferry.server.ratelimit import RateLimit
    from ferry.store import SqliteStore

    store = SqliteStore(home / "state.db")
    try:
        limits = RateLimits(tokens=RateLimit(1e9, 10**6))
        plane = create_app(store, admin_token="operator", rate_limits=limits).state.plane
        access = plane.access
        access.create_org(OPERATOR, "acme", "Acme", "a@acme.test")
        _, invitation = access.invite(OPERATOR, "acme", "b@acme.test", Role.ADMIN)
        _, user = access.accept(invitation, None)
        plane.apps.create(APP, "acme", "default")
        deploy = access.create_token(OPERATOR, TokenKind.DEPLOY, name="ci", app_name=APP)
        auth = plane.auth
        need = route_need("/v1/apps/{app_name}/machines", "GET")
        figures = {}
        tokens = {"operator": "operator", "org-admin": user.plain, "deploy": deploy.plain}
        for name, plain in tokens.items():
            costs = []
            for cold in (False, True):
                started = time.perf_counter()
                for _ in range(repeat):
                    if cold:
                        auth.cache.invalidate()
                    caller = auth.principal(plain)
                    if not caller.is_operator:
                        auth.spend(caller)
                        check(caller, need, {"app_name": APP}, auth.cache.app_org(APP))
                costs.append((time.perf_counter() - started) / repeat * 1e6)
            figures[name] = (costs[0], costs[1])
        return figures
    finally:
        store.close()


def _clone(rev: str, into: Path) -> Path:
    tree = into / "before"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "checkout", "--quiet", rev], check=True)
    return tree


def _rev(tree: Path) -> str:
    found = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return found.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--alternate", type=int, default=2000, help="requests each; 0: skip")
    parser.add_argument("--inproc", type=int, default=1500, help="calls per run; 0: skip")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--against", type=Path, help="a checkout of the 'before' commit")
    group.add_argument("--before", help="a revision to clone as 'before' (e.g. 268586e^)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing (Debian package wrk)")

    temp = Path(tempfile.mkdtemp(prefix="ferry-auth-bench-"))
    servers: list[Server] = []
    try:
        current = Server(ROOT, temp / "current", ["--rate-limit", "1e9", "--rate-burst", "1000000"])
        current.home.mkdir()
        servers.append(current)
        current.start()
        tokens = setup_current(current, args.machines)
        setups: list[tuple[str, Server, str]] = [(n, current, t) for n, t in tokens.items()]
        before_tree = args.against or (_clone(args.before, temp) if args.before else None)
        if before_tree is not None:
            before = Server(before_tree.resolve(), temp / "before-home")
            before.home.mkdir()
            servers.append(before)
            before.start()
            _populate(before, "personal", before.admin, args.machines)
            setups.append(("before", before, before.admin))
        for _name, server, token in setups:  # warm up: imports, caches, the JIT-less paths
            load(server, token, 1.0, args.connections)

        samples: dict[str, list[Sample]] = {name: [] for name, _, _ in setups}
        for round_no in range(args.rounds):
            shift = round_no % len(setups)  # each setup takes each place in turn: no order bias
            for name, server, token in setups[shift:] + setups[:shift]:
                samples[name].append(load(server, token, args.seconds, args.connections))
            print(
                f"round {round_no + 1}: "
                + "  ".join(f"{n} {samples[n][-1].rps:.0f}" for n, _, _ in setups),
                flush=True,
            )

        print()
        print(
            f"GET {LIST} ({args.machines} machines), wrk -t1 -c{args.connections} "
            f"-d{args.seconds:g}s, {args.rounds} interleaved rounds; "
            f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"this tree {_rev(ROOT)}"
            + (f", before = {_rev(before_tree)}" if before_tree else ", no 'before' server")
        )
        print(f"{'setup':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>11} ratio")
        for name, _, _ in setups:
            got = samples[name]
            ratio = ""
            if "before" in samples and name != "before":
                pairs = list(zip(got, samples["before"], strict=True))
                by_rps = statistics.median(a.rps / b.rps for a, b in pairs)
                by_cpu = statistics.median(b.cpu_us / a.cpu_us for a, b in pairs)
                ratio = f"{by_rps:.3f}x before by req/s, {by_cpu:.3f}x by CPU per request"
            print(
                f"{name:<10} {statistics.median(s.rps for s in got):>8.0f} "
                f"{statistics.median(s.p50_ms for s in got):>7.2f} "
                f"{statistics.median(s.p99_ms for s in got):>7.2f} "
                f"{statistics.median(s.cpu_us for s in got):>11.0f} {ratio}"
            )
        if args.alternate:
            times = alternate(setups, args.alternate)
            print()
            print(
                f"one client alternating request by request, {args.alternate} requests each "
                "(median ms, mean ms, req/s = 1/mean):"
            )
            base = statistics.mean(times["before"]) if "before" in times else None
            for name, got in times.items():
                mean = statistics.mean(got)
                ratio = f"  {base / mean:.3f}x before" if base and name != "before" else ""
                print(
                    f"{name:<10} {statistics.median(got) * 1e3:>7.2f} {mean * 1e3:>7.2f} "
                    f"{1 / mean:>7.0f}{ratio}"
                )
        if args.inproc:
            kinds = [(ROOT, "operator"), (ROOT, "org-admin"), (ROOT, "deploy")]
            if before_tree is not None:
                kinds.append((before_tree, "before"))
            cpu: dict[str, list[float]] = {kind: [] for _, kind in kinds}
            for _ in range(3):
                for tree, kind in kinds:
                    as_kind = "operator" if kind == "before" else kind
                    cpu[kind].append(inproc(tree, as_kind, args.inproc, args.machines))
            print()
            print(f"in-process, {args.inproc} list calls per run, 3 runs (CPU µs per request):")
            base_cpu = statistics.median(cpu["before"]) if "before" in cpu else None
            for kind, got in cpu.items():
                mid = statistics.median(got)
                ratio = f"  {base_cpu / mid:.3f}x before" if base_cpu and kind != "before" else ""
                runs = " ".join(f"{v:.0f}" for v in got)
                print(f"{kind:<10} {mid:>7.0f}  (runs {runs}){ratio}")
        print()
        print("authentication path alone, in this process (µs per request):")
        print(f"{'setup':<10} {'cached':>7} {'uncached':>9}")
        (temp / "inproc").mkdir()
        for name, (warm, cold) in auth_path_cost(temp / "inproc").items():
            print(f"{name:<10} {warm:>7.1f} {cold:>9.1f}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
