"""Real backends and a real edge proxy on 127.0.0.1 for the proxy's integration tests.

``AppBackend`` is a small asyncio HTTP/1.1 server standing in for a machine:
it answers with its name, sleeps on ``/slow``, echoes bodies on ``/echo``,
streams on ``/stream``, asks for a replay on ``/replay`` and reports health on
``/health``. Everything is bound to loopback on free ports and stopped by the
test that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import select
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import uvloop

from ferry.model import CheckConfig, Concurrency, DesiredState, MachineState
from ferry.proxy.limits import ProxyLimits
from ferry.proxy.routes import Backend, RouteTable, ServicePorts
from ferry.proxy.server import EdgeProxy

T = TypeVar("T")
DOMAIN = "ferry.test"


def run(coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    """Run a scenario on uvloop, bounded in time."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return uvloop.run(bounded())


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class AppBackend:
    """A machine's HTTP server on 127.0.0.1 (free port)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.healthy = True
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> AppBackend:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def start_on(self, sock: socket.socket) -> AppBackend:
        """Serve on an already listening socket (a frozen process thawing)."""
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and drop every open connection (like a killed process)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int((await reader.readline()).strip().split(b";")[0], 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(await reader.readexactly(size))
                await reader.readline()
        length = int(headers.get("content-length", "0"))
        return await reader.readexactly(length) if length else b""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await self._read_body(reader, headers)
                url = urlsplit(target)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                request = Request(method, url.path, query, headers, body)
                self.requests.append(request)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    await self._answer(request, writer)
                finally:
                    self.in_flight -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> None:
        path, q = request.path, request.query

        def respond(status: int, body: bytes, extra: str = "") -> None:
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nX-Backend: {self.name}\r\n"
                f"Server: app\r\n{extra}\r\n".encode()
                + body
            )

        if path == "/health":
            respond(200 if self.healthy else 503, b"ok" if self.healthy else b"sick")
        elif path == "/slow":
            await asyncio.sleep(float(q.get("s", "0.2")))
            respond(200, self.name.encode())
        elif path == "/echo":
            respond(200, request.body, f"X-Body-Length: {len(request.body)}\r\n")
        elif path == "/headers":
            respond(200, json.dumps(request.headers).encode())
        elif path == "/stream":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                + f"X-Backend: {self.name}\r\n\r\n".encode()
            )
            for _ in range(int(q.get("chunks", "10"))):
                chunk = b"x" * int(q.get("size", "1000"))
                writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        elif path == "/replay" and q.get("to") and not request.headers.get("fly-replay-src"):
            respond(409, b"replay me", f"Fly-Replay: {q['to']}\r\n")
        else:
            respond(200, self.name.encode())
        await writer.drain()


def backend_entry(
    machine_id: str,
    region: str,
    server: AppBackend,
    *,
    app: str = "web",
    soft: int = 20,
    hard: int | None = 25,
    checks: tuple[CheckConfig, ...] = (),
    state: MachineState = MachineState.STARTED,
    tcp_port: int | None = None,
) -> Backend:
    """A route-table entry for ``server`` (address 127.0.0.1, internal port = its port)."""
    if tcp_port is not None:
        service = ServicePorts(
            internal_port=server.port,
            ports=(tcp_port,),
            handlers=(),
            concurrency=Concurrency(type="connections", soft_limit=soft, hard_limit=hard),
            checks=checks,
        )
    else:
        service = ServicePorts(
            internal_port=server.port,
            ports=(80,),
            handlers=("http",),
            concurrency=Concurrency(type="requests", soft_limit=soft, hard_limit=hard),
            checks=checks,
        )
    return Backend(
        machine_id=machine_id,
        instance_id=f"{machine_id}-i",
        app=app,
        region=region,
        address="127.0.0.1",
        state=state,
        desired_state=DesiredState.STARTED,
        services=(service,),
    )


@dataclass
class TableBox:
    """The route table a test edits; the proxy calls it per request."""

    table: RouteTable = field(default_factory=RouteTable)

    def __call__(self) -> RouteTable:
        return self.table

    def set(self, *backends: Backend) -> None:
        apps: dict[str, list[Backend]] = {}
        for b in backends:
            apps.setdefault(b.app, []).append(b)
        self.table = RouteTable(self.table.version + 1, {a: tuple(bs) for a, bs in apps.items()})


@contextlib.asynccontextmanager
async def running_proxy(
    box: TableBox,
    *,
    region: str = "ams",
    rtt_ms: dict[str, float] | None = None,
    limits: ProxyLimits | None = None,
    **kwargs: Any,
) -> AsyncIterator[EdgeProxy]:
    proxy = EdgeProxy(
        region,
        DOMAIN,
        box,
        rtt_ms or {},
        http_listen=("127.0.0.1", 0),
        metrics_listen=("127.0.0.1", 0),
        limits=limits,
        **kwargs,
    )
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def client(port: int, app: str = "web") -> httpx.AsyncClient:
    """An HTTP client for ``app`` through an edge listening on ``port`` (Host routing)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Host": f"{app}.{DOMAIN}"},
        timeout=10,
        limits=httpx.Limits(max_connections=100),
    )


def edge_client(proxy: EdgeProxy, app: str = "web") -> httpx.AsyncClient:
    """``client`` for a running proxy's HTTP listener."""
    assert proxy.http_address is not None
    return client(proxy.http_address[1], app)


@contextlib.asynccontextmanager
async def backends(*names: str) -> AsyncIterator[list[AppBackend]]:
    started = [await AppBackend(n).start() for n in names]
    try:
        yield started
    finally:
        for b in started:
            await b.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    """Poll ``check`` every 50 ms until true or ``timeout`` (bounded)."""
    for _ in range(int(timeout / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


async def raw_exchange(port: int, data: bytes, *, read_timeout: float = 3.0) -> bytes:
    """Send raw bytes to the proxy and read until it closes (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(read_timeout):
                while chunk := await reader.read(65536):
                    chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 where connects hang: a listener that never accepts, its
    accept queue already full, so the kernel drops every further SYN."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        # The queue is full once a filler's handshake completed (listen(0) queues one).
        deadline = time.monotonic() + 2
        while not any(_connected(f) for f in fillers):
            assert time.monotonic() < deadline, "no filler connected to the blackhole in 2 s"
            select.select([], fillers, [], 0.01)
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()
