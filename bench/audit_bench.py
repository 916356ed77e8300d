"""Benchmark: what the audit trail costs a mutating call (create and release a lease).

Run::

    .venv/bin/python bench/audit_bench.py [--rounds 20 --cycles 60]

Two control planes, each in its own process (this script with ``--serve``),
served by uvicorn on its own loopback port over its own SQLite store (WAL,
``synchronous=NORMAL``, as the server runs it): ``with audit`` is
``create_app`` as shipped; ``without`` is the same app with the audit
middleware taken out before it first serves. Each has one host, one app and
one machine. A cycle is Fly's
``POST …/machines/{id}/lease`` then ``DELETE …/lease`` with the nonce, over
one keep-alive httpx connection per server, as an org admin (a user token),
so both calls are recorded on the audited plane. Rounds alternate between the
planes (interleaved, so background load hits both alike). Prints p50 and p90
per call for each plane, the difference (overall, and paired round by round),
each server process's CPU time per call (``/proc``: less sensitive to other
load on the machine than latency), the records written, and the cost of one
``append_audit`` on the store alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ferry.model.audit import AuditEntry
from ferry.server import create_app
from ferry.server.audit import AuditMiddleware
from ferry.store import SqliteStore

ADMIN = "bench-admin-token"
NONCE = "fly-machine-lease-nonce"


def serve(home: Path, port: int, audited: bool) -> None:
    """The server side (``--serve``): a control plane on ``port`` until killed."""
    store = SqliteStore(home / "state.db")
    app = create_app(store, admin_token=ADMIN, run_liveness=False, run_autoscaler=False)
    if not audited:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditMiddleware]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def served(home: Path, *, audited: bool) -> Iterator[tuple[str, SqliteStore, int]]:
    """A control plane in its own process on a loopback port; yields its URL, a
    second handle on its store (to count the records) and its pid."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, __file__, "--serve", str(home), str(port), str(int(audited))]
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        store = SqliteStore(home / "state.db")
        try:
            yield url, store, process.pid
        finally:
            store.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def prepare(
    url: str, connect: Callable[[str], httpx.Client] | None = None
) -> tuple[httpx.Client, str]:
    """acme with its admin's user token, app ``rocket`` and one machine; the client and
    the machine's lease path. ``connect(token)`` makes a client (default: over HTTP)."""

    def over_http(token: str) -> httpx.Client:
        return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

    connect = connect or over_http
    admin = connect(ADMIN)
    created = admin.post("/v1/orgs", json={"slug": "acme", "admin_email": "a@acme.test"}).json()
    plain = created["admin_invitation"]["invitation"]
    token = admin.post("/v1/invitations/accept", json={"invitation": plain}).json()["token"]
    admin.post(
        "/v1/hosts",
        json={
            "id": "ams-1",
            "region": "ams",
            "address": "10.0.0.2",
            "cpus": 4,
            "memory_mb": 4096,
            "machine_subnet": "10.1.0.0/24",
        },
    )
    admin.close()
    user = connect(token)
    user.post("/v1/apps", json={"app_name": "rocket", "org_slug": "acme"}).raise_for_status()
    machine = user.post("/v1/apps/rocket/machines", json={"config": {"image": "reg/r:1"}})
    machine.raise_for_status()
    return user, f"/v1/apps/rocket/machines/{machine.json()['id']}/lease"


def cycles(client: httpx.Client, path: str, count: int) -> tuple[list[float], list[float]]:
    """``count`` lease create+release cycles; the two calls' latencies in ms."""
    acquire, release = [], []
    for _ in range(count):
        t0 = time.perf_counter()
        answer = client.post(path, json={"ttl": 30})
        t1 = time.perf_counter()
        if answer.status_code != 200:
            raise SystemExit(f"lease refused: {answer.status_code} {answer.text}")
        nonce = answer.json()["data"]["nonce"]
        t2 = time.perf_counter()
        client.delete(path, headers={NONCE: nonce}).raise_for_status()
        t3 = time.perf_counter()
        acquire.append((t1 - t0) * 1000)
        release.append((t3 - t2) * 1000)
    return acquire, release


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def append_cost(home: Path, count: int) -> float:
    """Microseconds per ``append_audit`` on a store alone."""
    store = SqliteStore(home / "append.db")
    entry = AuditEntry(
        at=datetime.now(UTC),
        org_slug="acme",
        actor="user token 'a' (a@acme.test)",
        method="POST",
        route="/v1/apps/{app_name}/machines/{machine_id}/lease",
        target={"app_name": "rocket", "machine_id": "m1"},
        source="127.0.0.1",
        status=200,
        outcome="ok",
    )
    try:
        t0 = time.perf_counter()
        for _ in range(count):
            store.append_audit(entry)
        return (time.perf_counter() - t0) / count * 1e6
    finally:
        store.close()


def in_process(home: Path, count: int) -> tuple[float, float, float]:
    """The same cycle through the ASGI apps in this process (no network, no other
    process), alternating call by call between the planes: p50 ms with and without
    the audit, and the median of the paired differences."""
    apps = {}
    stores = []
    for name, audited in (("on", True), ("off", False)):
        store = SqliteStore(home / f"inproc-{name}.db")
        stores.append(store)
        app = create_app(store, admin_token=ADMIN, run_liveness=False, run_autoscaler=False)
        if not audited:
            app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditMiddleware]
        apps[name] = app
    clients = []
    try:
        planes = {}
        for name, app in apps.items():

            def connect(token: str, app: Any = app) -> httpx.Client:
                client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
                clients.append(client)
                return client

            planes[name] = prepare("http://testserver", connect)
        times: dict[str, list[float]] = {"on": [], "off": []}
        for name in planes:
            cycles(*planes[name], 20)  # warm-up
        for index in range(count):
            order = ("on", "off") if index % 2 == 0 else ("off", "on")
            for name in order:
                acquire, release = cycles(*planes[name], 1)
                times[name].append(acquire[0] + release[0])
        diffs = [a - b for a, b in zip(times["on"], times["off"], strict=True)]
        on, off = statistics.median(times["on"]) / 2, statistics.median(times["off"]) / 2
        return on, off, statistics.median(diffs) / 2
    finally:
        for client in clients:
            client.close()
        for store in stores:
            store.close()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=60)
    args = parser.parse_args()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {platform.machine()}")
    print(f"# python {platform.python_version()}, {args.rounds} rounds x {args.cycles} cycles")
    with tempfile.TemporaryDirectory(prefix="ferry-audit-bench-") as tmp:
        homes = {name: Path(tmp) / name for name in ("with audit", "without")}
        for home in homes.values():
            home.mkdir()
        results: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in homes}
        cpu = dict.fromkeys(homes, 0.0)
        paired: list[float] = []  # per round: p50 with audit - p50 without (both calls)
        with (
            served(homes["with audit"], audited=True) as (url_on, store_on, pid_on),
            served(homes["without"], audited=False) as (url_off, _, pid_off),
        ):
            pids = {"with audit": pid_on, "without": pid_off}
            planes = {"with audit": prepare(url_on), "without": prepare(url_off)}
            before = len(store_on.list_audit(None, limit=100_000))
            for client, path in planes.values():
                cycles(client, path, 20)  # warm-up, not counted
            for round_no in range(args.rounds):
                order = list(planes) if round_no % 2 == 0 else list(reversed(planes))
                medians = {}
                for name in order:
                    client, path = planes[name]
                    used = cpu_seconds(pids[name])
                    acquire, release = cycles(client, path, args.cycles)
                    cpu[name] += cpu_seconds(pids[name]) - used
                    results[name][0].extend(acquire)
                    results[name][1].extend(release)
                    medians[name] = statistics.median(acquire + release)
                paired.append(medians["with audit"] - medians["without"])
            written = len(store_on.list_audit(None, limit=100_000)) - before
            for client, _ in planes.values():
                client.close()
        print(f"{'plane':<12} {'call':<14} {'p50 ms':>8} {'p90 ms':>8}")
        for name, (acquire, release) in results.items():
            for call, values in (("create lease", acquire), ("release lease", release)):
                print(f"{name:<12} {call:<14} {pct(values, 50):8.3f} {pct(values, 90):8.3f}")
        for index, call in enumerate(("create lease", "release lease")):
            on = pct(results["with audit"][index], 50)
            off = pct(results["without"][index], 50)
            print(f"audit adds to {call} p50: {on - off:+.3f} ms ({on / off:.2f}x)")
        paired_ms = statistics.median(paired)
        print(f"paired by round, median of (p50 with - p50 without): {paired_ms:+.3f} ms")
        calls = 2 * args.rounds * args.cycles
        for name in homes:
            print(f"server CPU per call, {name}: {cpu[name] / calls * 1e6:.0f} us")
        extra = (cpu["with audit"] - cpu["without"]) / calls * 1e6
        print(f"audit's server CPU per recorded call: {extra:+.0f} us")
        print(f"records written by the audited plane: {written} (warm-up included)")
        print(f"append_audit alone: {append_cost(Path(tmp), 2000):.0f} us per record")
        on, off, diff = in_process(Path(tmp), args.rounds * args.cycles)
        print(
            f"in process (ASGI, paired call by call), per call p50: with audit {on:.3f} ms,"
            f" without {off:.3f} ms, paired difference {diff * 1000:+.0f} us"
        )


if __name__ == "__main__":
    main()
