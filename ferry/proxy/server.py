"""``EdgeProxy``: one region's edge — HTTP, raw TCP, health checks, metrics — and ``run_proxy``.

The route table arrives through a callable returning the current immutable
snapshot (the lead's watcher in ``ferry/proxy/watch.py`` feeds it); the HTTP
edge reads it per request, and a background loop follows it to start and stop
health checks and raw TCP listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import signal
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from ferry.errors import NetworkError, ValidationError
from ferry.proxy.health import HealthBook, HealthChecker, Prober
from ferry.proxy.http import HttpEdge, NoStartedMachine
from ferry.proxy.limits import LoadTracker, ProxyLimits
from ferry.proxy.metrics import EdgeCollector, EdgeStats
from ferry.proxy.metrics_server import MetricsServer
from ferry.proxy.routes import RouteTable
from ferry.proxy.statics import StaticsServer
from ferry.proxy.tcp import TcpEdge
from ferry.proxy.tls_accept import TlsAcceptor, listening_sockets
from ferry.proxy.tls_listener import (
    TLS_HANDSHAKE_TIMEOUT,
    TlsCollector,
    TlsHandoff,
    h2_protocol,
)
from ferry.proxy.waf_events import WafEventBuffer
from ferry.proxy.waf_gate import WafGate
from ferry.proxy.waf_metrics import WafCollector, WafStats
from ferry.tls.bundle import EdgeTls
from ferry.tls.edge_tls import EdgeTlsContexts
from ferry.waf.engine import RuleEngine

__all__ = ["EdgeProxy", "run_proxy"]

log = logging.getLogger(__name__)


class EdgeProxy:
    """The edge proxy of one region. Start with ``await start()``, stop with ``await stop()``."""

    def __init__(
        self,
        region: str,
        domain: str,
        table: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        *,
        http_listen: tuple[str, int],
        metrics_listen: tuple[str, int] | None = None,
        limits: ProxyLimits | None = None,
        public_port: int | None = None,
        wake: NoStartedMachine | None = None,
        prober: Prober | None = None,
        rng: random.Random | None = None,
        spill_rtt_ms: float = 0.0,
        table_poll: float = 0.5,
        reuse_port: bool = False,
        backhaul_listen: tuple[str, int] | None = None,
        backhaul_peers: Mapping[str, tuple[str, int]] | None = None,
        statics: StaticsServer | None = None,
        waf_engine: RuleEngine | None = None,
        https_listen: tuple[str, int] | None = None,
        tls: Callable[[], EdgeTls] | None = None,
        tls_handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        """``backhaul_listen``: where other edges send requests for this region's
        machines; ``backhaul_peers``: region -> that region's backhaul listener.
        ``statics``: serves the apps' ``[[statics]]`` to clients (not on the backhaul:
        the first edge already did). ``waf_engine``: runs the apps' ``[waf]`` (the
        edge owns it and closes it on stop); its events collect in ``waf_events``.
        ``https_listen`` with ``tls`` (the certificates,
        read on every handshake; see ``ferry.tls.edge_tls``): the TLS listener, HTTP/1.1
        and, when the edge has it, HTTP/2 by ALPN; a handshake not done within
        ``tls_handshake_timeout`` seconds is closed.
        Its ACME HTTP-01 tokens are answered on the HTTP port."""
        self.region = region
        self.limits = limits or ProxyLimits()
        self.stats = EdgeStats(region)
        self.health = HealthBook(cooldown=self.limits.unhealthy_cooldown)
        self.load = LoadTracker(max_waiters=self.limits.queue_max_waiters)
        rng = rng or random.Random()
        rtts = {**rtt_ms, region: 0.0}
        self._table = table
        self._http_listen = http_listen
        self._metrics_listen = metrics_listen
        self._public_port = public_port
        self._table_poll = table_poll
        self._reuse_port = reuse_port
        if https_listen is not None and tls is None:
            raise ValidationError("an HTTPS listener needs a source of certificates (tls=...)")
        self._https_listen = https_listen if tls is not None else None
        self._tls_handshake_timeout = tls_handshake_timeout
        self._h2 = h2_protocol() if self._https_listen is not None else None
        self.tls_contexts = (
            EdgeTlsContexts(tls, alpn=("h2", "http/1.1") if self._h2 else ("http/1.1",))
            if tls is not None
            else None
        )
        # Raw TCP ports with the tls handler: the machine gets the bytes as sent, so no
        # protocol is agreed on its behalf (no ALPN), and no ACME challenge is answered.
        self._tcp_tls = EdgeTlsContexts(tls, alpn=(), challenges=False) if tls is not None else None
        self._https_acceptor: TlsAcceptor | None = None
        self.https_address: tuple[str, int] | None = None
        self.tls_handshakes: dict[str, int] = {}  # ALPN -> completed handshakes
        edge = functools.partial(
            HttpEdge, region, domain, table, rtts,
            public_port=public_port or http_listen[1] or 80,
            limits=self.limits, health=self.health, load=self.load, rng=rng,
        )  # fmt: skip
        self.http = edge(
            stats=self.stats,
            wake=wake,
            spill_rtt_ms=spill_rtt_ms,
            backhaul=backhaul_peers,
            statics=statics,
            https_port=self._https_listen[1] if self._https_listen else 0,
            tls=tls,
        )
        # Requests other edges forward here: their own stats (the first edge counts
        # the client's request), this region's load and health.
        self.backhaul = (
            edge(stats=EdgeStats(region), trusted=True) if backhaul_listen is not None else None
        )
        self._backhaul_listen = backhaul_listen
        self._backhaul_server: asyncio.Server | None = None
        self.backhaul_address: tuple[str, int] | None = None
        self.tcp = TcpEdge(
            http_listen[0],
            table,
            rtts,
            limits=self.limits,
            load=self.load,
            health=self.health,
            stats=self.stats,
            rng=rng,
            tls=self._tcp_tls.listener if self._tcp_tls is not None else None,
            tls_handshake_timeout=tls_handshake_timeout,
        )
        self.checker = HealthChecker(self.health, prober)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EdgeCollector(self.stats, self.load.by_app))
        self.waf_events = WafEventBuffer()
        self.waf_stats = WafStats(region)
        self.waf: WafGate | None = None
        if waf_engine is not None:
            # Clients' requests only: the backhaul's were inspected by the first edge.
            self.waf = WafGate(waf_engine, self.waf_events, self.waf_stats)
            self.waf.serve(self.http)
            events = self.waf_events
            self.registry.register(WafCollector(self.waf_stats, lambda: events.dropped))
        if self.tls_contexts is not None and self._tcp_tls is not None:
            self.registry.register(
                TlsCollector(region, (self.tls_contexts, self._tcp_tls), self.tls_handshakes)
            )
        self._metrics = MetricsServer(self.registry)
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.http_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None

    async def start(self) -> None:
        """Bind the listeners and start the background loops.

        Raises ``NetworkError`` naming the address when a port cannot be bound.
        Port 0 picks a free port; the bound addresses are in ``http_address``
        and ``metrics_address``.
        """
        loop = asyncio.get_running_loop()
        host, port = self._http_listen
        try:
            self._server = await loop.create_server(
                self.http.protocol,
                host,
                port,
                reuse_address=True,
                reuse_port=self._reuse_port or None,
                backlog=1024,
            )
            bound = self._server.sockets[0].getsockname()
            self.http_address = (str(bound[0]), int(bound[1]))
            if self._public_port is None and port == 0:
                self.http.headers = type(self.http.headers)(self.region, self.http_address[1])
            if self._https_listen is not None and self.tls_contexts is not None:
                sockets = listening_sockets(*self._https_listen, reuse_port=self._reuse_port)
                self._https_acceptor = TlsAcceptor(
                    sockets,
                    self.tls_contexts.listener,
                    self._tls_protocol,
                    handshake_timeout=self._tls_handshake_timeout,
                    use_event_loop=self.tls_contexts.challenge_pending,
                )
                bound = sockets[0].getsockname()
                self.https_address = (str(bound[0]), int(bound[1]))
                if not self.http.https_port:  # port 0: the one the kernel picked
                    self.http.https_port = self.https_address[1]
                    self.http.tls_headers = type(self.http.headers)(
                        self.region, self.https_address[1], tls=True
                    )
            if self._metrics_listen is not None:
                self.metrics_address = await self._metrics.start(*self._metrics_listen)
            if self.backhaul is not None and self._backhaul_listen is not None:
                self._backhaul_server = await loop.create_server(
                    self.backhaul.protocol, *self._backhaul_listen, reuse_address=True
                )
                hop = self._backhaul_server.sockets[0].getsockname()
                self.backhaul_address = (str(hop[0]), int(hop[1]))
        except OSError as exc:
            await self.stop()
            raise NetworkError(
                f"the edge proxy of {self.region} cannot listen: {exc.strerror or exc}",
                hint="pick another port or stop what holds it",
            ) from exc
        self._tasks = [
            loop.create_task(self._sweep_loop()),
            loop.create_task(self._follow_table()),
        ]
        await self._sync_table()

    def _tls_protocol(self) -> TlsHandoff:
        return TlsHandoff(self.http, self._h2, self.tls_handshakes)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tick)
            self.http.sweep()
            if self.backhaul is not None:
                self.backhaul.sweep()

    async def _sync_table(self) -> None:
        table = self._table()
        if self.waf is not None:
            self.waf.sync(table)
        self.checker.sync(table)
        await self.tcp.sync()

    async def _follow_table(self) -> None:
        last: RouteTable | None = None
        while True:
            try:
                table = self._table()
                if table is not last:
                    last = table
                    await self._sync_table()
            except Exception:  # the table source is someone else's code: keep serving
                log.exception("following the route table failed")
            await asyncio.sleep(self._table_poll)

    async def stop(self) -> None:
        """Stop listening, close every connection and background task; idempotent."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._https_acceptor is not None:
            self._https_acceptor.close()
            self._https_acceptor = None
        if self._backhaul_server is not None:
            self._backhaul_server.close()
            self._backhaul_server = None
        if self.backhaul is not None:
            self.backhaul.close()
        await self.tcp.close()
        await self.checker.close()
        await self._metrics.stop()
        self.http.close()
        if self.waf is not None:
            await self.waf.engine.close()


def run_proxy(
    region: str,
    domain: str,
    table: Callable[[], RouteTable],
    rtt_ms: Mapping[str, float],
    *,
    http_listen: tuple[str, int],
    metrics_listen: tuple[str, int] | None = None,
    limits: ProxyLimits | None = None,
    wake: NoStartedMachine | None = None,
    workers: int = 1,
) -> None:
    """Run an edge proxy on uvloop until SIGTERM or SIGINT (blocking).

    ``workers > 1`` forks that many processes sharing the HTTP port through
    SO_REUSEPORT (the kernel spreads connections); each has its own pool,
    load counts and health, and only the first serves ``metrics_listen`` (its
    figures then cover its share of the traffic). SIGTERM to this process
    stops every worker. Raises ``ValidationError`` for ``workers < 1``.
    """
    if workers < 1:
        raise ValidationError(f"workers must be at least 1, not {workers}")
    if workers == 1:
        _serve_one(region, domain, table, rtt_ms, http_listen, metrics_listen, limits, wake, False)
        return
    if http_listen[1] == 0:
        raise ValidationError("several workers need a fixed HTTP port, not 0")
    children: list[int] = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                metrics = metrics_listen if index == 0 else None
                _serve_one(region, domain, table, rtt_ms, http_listen, metrics, limits, wake, True)
            except BaseException:
                code = 1
                log.exception("edge worker %d failed", index)
            finally:
                os._exit(code)
        children.append(pid)
    _supervise(children)


def _supervise(children: list[int]) -> None:
    """Forward SIGTERM/SIGINT to the workers and wait for all of them (blocking)."""

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for pid in children:
            while True:
                try:
                    os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:
                    break
    finally:
        forward(signal.SIGTERM, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_one(
    region: str,
    domain: str,
    table: Callable[[], RouteTable],
    rtt_ms: Mapping[str, float],
    http_listen: tuple[str, int],
    metrics_listen: tuple[str, int] | None,
    limits: ProxyLimits | None,
    wake: NoStartedMachine | None,
    reuse_port: bool,
) -> None:
    import uvloop

    async def main() -> None:
        proxy = EdgeProxy(
            region,
            domain,
            table,
            rtt_ms,
            http_listen=http_listen,
            metrics_listen=metrics_listen,
            limits=limits,
            wake=wake,
            reuse_port=reuse_port,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await proxy.start()
        log.info("edge proxy of %s listening on %s", region, proxy.http_address)
        try:
            await stop.wait()
        finally:
            await proxy.stop()

    uvloop.run(main())
