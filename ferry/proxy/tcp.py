"""Raw TCP services: ``[[services]]`` ports without an ``http`` handler (with ``tls``: TLS
terminated by the edge first, the same certificates as its HTTPS listener).

``TcpEdge.sync()`` follows the route table: one listener per public port
(bound on the edge's host), opened when an app offers a raw TCP service on
it and closed when none does. Each accepted connection is routed with the
same rule as HTTP (load counted in connections), connected with up to
``connect_attempts`` tries, then spliced byte for byte with back-pressure.
Bytes each way leave at the end of the loop turn, as on the HTTP edge
(``ferry.proxy.outbox``); a half-close or a close sends them first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Mapping

from ferry.proxy.health import HealthBook
from ferry.proxy.limits import LoadTracker, ProxyLimits
from ferry.proxy.metrics import EdgeStats
from ferry.proxy.outbox import Outbox, TurnWriter
from ferry.proxy.routes import RouteTable
from ferry.proxy.routing import NO_PREFS, Choice, NoRoute, Target, choose_target, plan_app_routes

__all__ = ["TcpEdge", "raw_tcp_ports", "tls_tcp_ports"]

log = logging.getLogger(__name__)


def raw_tcp_ports(table: RouteTable) -> dict[int, str]:
    """Public port -> app for raw TCP services (pure).

    A port two apps claim goes to the first by name.
    """
    out: dict[int, str] = {}
    for app in sorted(table.apps):
        for backend in table.apps[app]:
            for service in backend.services:
                if service.protocol != "tcp" or "http" in service.handlers:
                    continue
                for port in service.ports:
                    out.setdefault(port, app)
    return out


def tls_tcp_ports(table: RouteTable) -> set[int]:
    """The raw TCP ports whose service has the ``tls`` handler: TLS is terminated by the
    edge, the machine gets the plain bytes (pure)."""
    return {
        port
        for backends in table.apps.values()
        for backend in backends
        for service in backend.services
        if service.protocol == "tcp"
        and "tls" in service.handlers
        and "http" not in service.handlers
        for port in service.ports
    }


class _Upstream(asyncio.Protocol):
    outbox: Outbox  # made in connection_made

    def __init__(self, client: _TcpClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.outbox = Outbox(self.client.edge.turn, transport.write)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.client.bytes_out += len(data)
        if self.client.transport is not None:
            self.client.outbox.put(data)

    def eof_received(self) -> bool | None:
        if self.client.transport is not None and self.client.transport.can_write_eof():
            self.client.outbox.send_now()
            self.client.transport.write_eof()
            return True  # half-close: keep reading the client's side
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.outbox.drop()
        if self.client.transport is not None:
            self.client.outbox.send_now()
            self.client.transport.close()

    def pause_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.client.transport is not None:
            self.client.transport.resume_reading()


class _TcpClient(asyncio.Protocol):
    outbox: Outbox  # made in connection_made

    def __init__(self, edge: TcpEdge, app: str, port: int) -> None:
        self.edge = edge
        self.app = app
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.upstream: _Upstream | None = None
        self.buffered: list[bytes] = []
        self.eof_pending = False  # the client half-closed before the machine was connected
        self.target: Target | None = None
        self.task: asyncio.Task[None] | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.outbox = Outbox(self.edge.turn, transport.write)  # type: ignore[attr-defined]
        transport.pause_reading()  # type: ignore[attr-defined]
        self.edge.stats.record_tcp_connect(self.app)
        self.task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        edge = self.edge
        loop = asyncio.get_running_loop()
        for _ in range(edge.limits.connect_attempts):
            decision = edge.choose(self.app, self.port)
            if not isinstance(decision, Choice):
                break
            target = decision.target
            edge.load.acquire(self.app, target.backend.machine_id)
            began = loop.time()
            try:
                _, upstream = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Upstream(self), target.backend.address, target.port
                    ),
                    edge.limits.connect_timeout,
                )
            except (OSError, TimeoutError):
                edge.load.release(self.app, target.backend.machine_id)
                edge.health.mark_refused(target.backend.machine_id)
                continue
            edge.stats.record_connect(self.app, loop.time() - began)
            self.target, self.upstream = target, upstream
            if self.transport is None or self.transport.is_closing():
                if upstream.transport is not None:
                    upstream.transport.close()
                return
            if self.buffered and upstream.transport is not None:
                upstream.transport.write(b"".join(self.buffered))
                self.buffered = []
            if self.eof_pending:
                if upstream.transport is not None and upstream.transport.can_write_eof():
                    upstream.transport.write_eof()
                return  # nothing more comes from the client
            self.transport.resume_reading()
            return
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.outbox.put(data)
        else:
            # Still connecting. The pause in connection_made may come before the
            # transport starts reading (uvloop), so pause again: one read is held.
            self.buffered.append(data)
            if self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        upstream = self.upstream
        if (
            upstream is not None
            and upstream.transport is not None
            and upstream.transport.can_write_eof()
        ):
            upstream.outbox.send_now()
            upstream.transport.write_eof()
            return True
        if upstream is None and self.task is not None and not self.task.done():
            self.eof_pending = True  # still connecting: the EOF follows the buffered bytes
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.outbox.drop()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.outbox.send_now()
            self.upstream.transport.close()
        if self.target is not None:
            self.edge.load.release(self.app, self.target.backend.machine_id)
            self.target = None
        self.edge.stats.record_tcp_bytes(self.app, self.bytes_in, self.bytes_out)

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()


class TcpEdge:
    """Raw TCP listeners of one edge; event-loop only."""

    def __init__(
        self,
        host: str,
        table: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        *,
        limits: ProxyLimits,
        load: LoadTracker,
        health: HealthBook,
        stats: EdgeStats,
        rng: random.Random,
        tls: ssl.SSLContext | None = None,
        tls_handshake_timeout: float = 10.0,
    ) -> None:
        """``tls``: the edge's TLS listener context, for ports with the ``tls`` handler
        (without it such ports are not opened)."""
        self.host = host
        self.tls = tls
        self.tls_handshake_timeout = tls_handshake_timeout
        self.table = table
        self.rtt_ms = rtt_ms
        self.limits = limits
        self.load = load
        self.health = health
        self.stats = stats
        self.rng = rng
        self.turn = TurnWriter()  # the relayed bytes of a loop turn leave together
        self._servers: dict[int, tuple[str, asyncio.Server]] = {}
        self._tls_ports: set[int] = set()

    def choose(self, app: str, port: int) -> Choice | NoRoute:
        table = self.table()
        routes = plan_app_routes(app, table.backends(app), self.rtt_ms, public_port=port)
        health = self.health
        return choose_target(
            routes, self.load.load, health.health, NO_PREFS, self.rng, checked=health.checked
        )

    def client(self, app: str, port: int) -> asyncio.Protocol:
        """The protocol that splices one connection accepted elsewhere (a Flycast
        address's) to ``app``'s machines serving public ``port``."""
        return _TcpClient(self, app, port)

    @property
    def ports(self) -> dict[int, str]:
        """Open listeners: public port -> app."""
        return {port: app for port, (app, _) in self._servers.items()}

    async def sync(self) -> None:
        """Open and close listeners to match the table; a port that cannot be bound is logged."""
        table = self.table()
        wanted = raw_tcp_ports(table)
        tls_ports = tls_tcp_ports(table)
        for port, (app, server) in list(self._servers.items()):
            if wanted.get(port) != app or (port in tls_ports) != (port in self._tls_ports):
                server.close()
                del self._servers[port]
        self._tls_ports = tls_ports
        loop = asyncio.get_running_loop()
        for port, app in wanted.items():
            if port in self._servers:
                continue
            tls = port in tls_ports
            if tls and self.tls is None:
                log.warning("not opening %d for %s: the edge has no certificates", port, app)
                continue
            try:
                server = await loop.create_server(
                    lambda app=app, port=port: _TcpClient(self, app, port),
                    self.host,
                    port,
                    reuse_address=True,
                    ssl=self.tls if tls else None,
                    ssl_handshake_timeout=self.tls_handshake_timeout if tls else None,
                )
            except OSError as exc:
                log.warning("cannot listen on %s:%d for %s: %s", self.host, port, app, exc)
                continue
            self._servers[port] = (app, server)

    async def close(self) -> None:
        for _, server in self._servers.values():
            server.close()
        self._servers.clear()
