"""The edge's fast path with real sockets: pooled keep-alive, TCP_NODELAY, worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from .harness import DOMAIN, TableBox, backend_entry, backends, raw_exchange, run, running_proxy

ROOT = Path(__file__).resolve().parents[3]


def test_keep_alive_requests_reuse_one_machine_connection() -> None:
    async def scenario() -> tuple[list[int], int]:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                url = f"http://127.0.0.1:{proxy.http_address[1]}"
                async with httpx.AsyncClient(base_url=url, headers={"Host": f"web.{DOMAIN}"}) as c:
                    statuses = [(await c.get("/")).status_code for _ in range(30)]
                return statuses, ams.connections

    statuses, connections = run(scenario())
    assert statuses == [200] * 30
    assert connections == 1  # one pooled connection carried all 30 requests


def test_pipelined_requests_get_their_answers_in_order_with_their_own_ids() -> None:
    async def scenario() -> bytes:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                one = b"GET /%d HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n"
                last = b"GET /3 HTTP/1.1\r\nHost: web.ferry.test\r\nConnection: close\r\n\r\n"
                return await raw_exchange(proxy.http_address[1], one % 1 + one % 2 + last)

    raw = run(scenario())
    assert raw.count(b"HTTP/1.1 200 ") == 3
    ids = [line.split(b": ")[1] for line in raw.split(b"\r\n") if line.startswith(b"Fly-Request")]
    assert len(set(ids)) == 3 and ids == sorted(ids)


def test_both_sides_of_the_edge_send_without_delay() -> None:
    async def scenario() -> list[int]:
        async with backends("ams-1") as (ams,):
            box = TableBox()
            box.set(backend_entry("m1", "ams", ams))
            async with running_proxy(box) as proxy:
                assert proxy.http_address is not None
                reader, writer = await asyncio.open_connection(*proxy.http_address)
                writer.write(b"GET / HTTP/1.1\r\nHost: web.ferry.test\r\n\r\n")
                await reader.readuntil(b"ams-1")
                client_side = next(iter(proxy.http.connections))
                pooled = proxy.http.pool.take(("127.0.0.1", ams.port))
                assert client_side.transport is not None
                assert pooled is not None and pooled.transport is not None
                flags = [
                    t.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                    for t in (client_side.transport, pooled.transport)
                ]
                writer.close()
                return flags

    assert all(run(scenario()))


_WORKERS = """
import sys
sys.path.insert(0, {root!r})
from ferry.model import Concurrency, DesiredState, MachineState
from ferry.proxy.routes import Backend, RouteTable, ServicePorts
from ferry.proxy.server import run_proxy
service = ServicePorts(internal_port={backend}, ports=(80,), handlers=("http",),
                       concurrency=Concurrency(type="requests", soft_limit=20, hard_limit=25))
backend = Backend("m1", "m1-i", "web", "ams", "127.0.0.1", MachineState.STARTED,
                  DesiredState.STARTED, (service,))
table = RouteTable(1, {{"web": (backend,)}})
run_proxy("ams", "ferry.test", lambda: table, {{}}, http_listen=("127.0.0.1", {port}), workers=2)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_worker_processes_share_the_port_and_stop_together() -> None:
    async def scenario() -> tuple[list[str], list[int], list[int]]:
        async with backends("ams-1") as (ams,):
            port = _free_port()
            code = textwrap.dedent(_WORKERS).format(root=str(ROOT), backend=ams.port, port=port)
            proc = subprocess.Popen([sys.executable, "-c", code])
            try:
                workers: list[int] = []
                for _ in range(100):  # bounded: 10 s
                    workers = _children(proc.pid)
                    if len(workers) == 2:
                        try:
                            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                            break
                        except OSError:
                            pass
                    await asyncio.sleep(0.1)
                texts = []
                for _ in range(20):  # a new connection each time: the kernel spreads them
                    async with httpx.AsyncClient(timeout=5) as c:
                        r = await c.get(f"http://127.0.0.1:{port}/", headers={"Host": "web"})
                        texts.append(r.text)
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)  # it reaps its workers before it exits
                alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
                return texts, workers, alive
            finally:
                if proc.poll() is None:
                    for pid in _children(proc.pid):
                        os.kill(pid, signal.SIGKILL)
                    proc.kill()
                    proc.wait(5)

    texts, workers, alive = run(scenario(), timeout=40)
    assert texts == ["ams-1"] * 20
    assert len(workers) == 2 and alive == []
