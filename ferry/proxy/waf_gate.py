"""The WAF on the edge's request path: which apps are inspected, and one request's check.

``WafGate`` follows the route table (``sync``): an app's ``[waf]`` (from its
newest started machine) is compiled in the engine's workers before it is
used; until then, and for good if it fails to load, the app keeps the rule
set it had (the failure is logged and counted). Requests already being
inspected finish with the settings they started with, so a deploy that
changes ``[waf]`` drops no connection. When no app is inspected the gate
detaches itself from the edge (``HttpEdge.waf`` is None): the request path
pays one attribute check.

``WafCheck`` is one request's inspection, created by the connection from the
headers as sent (``attach``). The exchange hands it control at ``start``;
it waits for the body (up to ``body_limit + 1`` bytes, or its end), runs
phases 1-2 in a worker, and then lets the exchange go on (``proceed``),
answers 403 (block mode, the engine asked to), or 413 (block mode, a body
over the limit). The response's headers go to the engine as they leave for
the client (not held: CRS scores responses but blocks on them only in the
response-body phase, which the edge does not run), then the logging phase,
then the event (``waf_events``) and the counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ferry.model.machine_waf import WafAction, WafConfig
from ferry.proxy.routes import RouteTable
from ferry.proxy.waf_events import WafEventBuffer, event_of
from ferry.proxy.waf_metrics import WafStats
from ferry.waf.engine import (
    Headers,
    Inspection,
    RuleEngine,
    WafEngineError,
    WafRequest,
    WafRulesError,
)

if TYPE_CHECKING:
    from ferry.proxy.exchange import Exchange
    from ferry.proxy.http import HttpEdge

__all__ = ["WafCheck", "WafGate"]

log = logging.getLogger(__name__)


class WafGate:
    """The edge's per-app WAF settings and the engine they run on. Event-loop only."""

    def __init__(
        self,
        engine: RuleEngine,
        events: WafEventBuffer,
        stats: WafStats,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.events = events
        self.stats = stats
        self.wall_clock = wall_clock
        self.active: dict[str, WafConfig] = {}  # app -> the rule set in use (loaded)
        self.failed: dict[str, str] = {}  # app -> why its newest [waf] did not load
        self._wanted: dict[str, WafConfig] = {}
        self._edges: list[HttpEdge] = []
        self._loads: dict[str, asyncio.Task[None]] = {}
        self._bad: dict[str, WafConfig] = {}  # app -> the settings that failed (not retried)
        self.logging: set[asyncio.Task[None]] = set()  # requests' last phases under way

    def serve(self, edge: HttpEdge) -> None:
        """Inspect ``edge``'s requests (it is attached while any app is inspected)."""
        self._edges.append(edge)
        self._publish()

    def sync(self, table: RouteTable) -> None:
        """Follow ``table``: compile new settings in the background, drop apps that left."""
        self._wanted = dict(table.waf)
        for app in list(self.active):
            if app not in self._wanted:
                del self.active[app]
                self.failed.pop(app, None)
        for app, config in self._wanted.items():
            if config in (self.active.get(app), self._bad.get(app)) or app in self._loads:
                continue
            task = asyncio.get_running_loop().create_task(self._load(app, config))
            self._loads[app] = task
        self._publish()

    async def settled(self) -> None:
        """Wait for the loads under way (tests, start-up)."""
        while self._loads:
            await asyncio.gather(*self._loads.values(), return_exceptions=True)

    async def _compile(self, config: WafConfig) -> None:
        """``engine.load``, tried again (3 times, 1 s apart) when a worker failed rather
        than the rules; ``WafRulesError`` at once."""
        for attempt in range(3):
            try:
                await self.engine.load(config)
                return
            except WafRulesError:
                raise
            except WafEngineError:
                if attempt == 2:
                    raise
                await asyncio.sleep(1.0)

    async def _load(self, app: str, config: WafConfig) -> None:
        try:
            await self._compile(config)
        except WafEngineError as exc:
            kept = "keeps its last good rule set" if app in self.active else "is not inspected"
            log.error("the [waf] of %s does not load; the app %s: %s", app, kept, exc)
            self.failed[app] = str(exc)
            if isinstance(exc, WafRulesError):
                self._bad[app] = config  # the same settings would fail the same way
            self.stats.record_load_failure(app)
        else:
            if self._wanted.get(app) == config:
                self.active[app] = config
                self.failed.pop(app, None)
                self._bad.pop(app, None)
        finally:
            del self._loads[app]
        latest = self._wanted.get(app)
        if latest is not None and latest not in (config, self.active.get(app)):
            self._loads[app] = asyncio.get_running_loop().create_task(self._load(app, latest))
        self._publish()

    def _publish(self) -> None:
        for edge in self._edges:
            edge.waf = self if self.active else None

    def attach(self, exchange: Exchange, url: bytes, headers: Headers, version: str) -> None:
        """Give ``exchange`` a check when its app is inspected (called with the headers)."""
        config = self.active.get(exchange.app)
        if config is not None:
            exchange.waf = WafCheck(self, exchange, config, url, headers, version)


class WafCheck:
    """One request's inspection; owned by its exchange."""

    __slots__ = (
        "at",
        "blocked",
        "closed",
        "config",
        "exchange",
        "gate",
        "headers",
        "inspection",
        "over_limit",
        "started",
        "task",
        "url",
        "version",
    )  # fmt: skip

    def __init__(
        self,
        gate: WafGate,
        exchange: Exchange,
        config: WafConfig,
        url: bytes,
        headers: Headers,
        version: str,
    ) -> None:
        self.gate = gate
        self.exchange = exchange
        self.config = config
        self.url = url
        self.headers = headers
        self.version = version
        self.inspection: Inspection | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = False
        self.over_limit = False
        self.blocked = 0
        self.closed = False
        self.at = gate.wall_clock()  # the event's time: when the request came

    def start(self) -> None:
        """The exchange is current: inspect once the body (up to the limit) is here."""
        self.started = True
        self.body_arrived()

    def body_arrived(self) -> None:
        """Called as the request body comes and when it ends."""
        ex = self.exchange
        if not self.started or self.task is not None or ex.done:
            return
        request = ex.request
        whole = ex.req_done or request.upgrade or not (request.chunked or request.content_length)
        if whole or ex.bytes_in > self.config.body_limit:
            self.over_limit = ex.bytes_in > self.config.body_limit
            self.task = asyncio.get_running_loop().create_task(self._inspect())

    def _request(self) -> WafRequest:
        ex = self.exchange
        transport = ex.client.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        body = b"".join(ex.pending) if ex.pending else b""
        return WafRequest(
            ex.request_id.decode(),
            (str(peer[0]), int(peer[1])) if peer else ("0.0.0.0", 0),
            (str(local[0]), int(local[1])) if local else ("0.0.0.0", 0),
            ex.method,
            self.url,
            self.version,
            self.headers,
            body[: self.config.body_limit + 1],
        )

    async def _inspect(self) -> None:
        ex = self.exchange
        gate = self.gate
        block = self.config.mode == "block"
        try:
            self.inspection = await gate.engine.request(self.config, self._request())
        except Exception as exc:  # WafEngineError, or a bug: the request must not hang
            gate.stats.record_error(ex.app)
            log.error("the WAF could not inspect %s: %r", ex.request_id.decode(), exc)
            if block and not ex.done:
                ex.fail(503, "the web application firewall is unavailable; try again")
            elif not ex.done:
                ex.proceed()
            return
        if ex.done:
            self.close()
            return
        status = self.inspection.status if block else 0
        if not status and block and self.over_limit:
            status = 413
        if status:
            self.blocked = status
            ex.keep_alive = ex.keep_alive and ex.req_done
            rid = ex.request_id.decode()
            if status == 413:
                message = f"the request body is larger than {self.config.body_limit} bytes"
            else:
                message = f"blocked by the web application firewall (request {rid})"
            ex.fail(status, message)  # fail -> finish -> close(): logging and the event
            return
        ex.proceed()

    def response(self, status: int, headers: list[tuple[bytes, bytes]], http11: bool) -> None:
        """The response head from the machine: phase 3 and logging, in the background."""
        if self.inspection is None or self.closed:
            return
        self.closed = True
        protocol = "HTTP/1.1" if http11 else "HTTP/1.0"
        self._end((status, protocol, tuple(headers)))

    def close(self) -> None:
        """The exchange ended (answered by the edge, failed, or the client left)."""
        if self.task is not None and self.inspection is None and not self.task.done():
            return  # _inspect sees the exchange is done and closes then
        if self.inspection is None or self.closed:
            return
        self.closed = True
        self._end(None)

    def _end(self, response: tuple[int, str, Headers] | None) -> None:
        task = asyncio.get_running_loop().create_task(self._log(response))
        self.gate.logging.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self.gate.logging.discard)

    async def _log(self, response: tuple[int, str, Headers] | None) -> None:
        gate, ex = self.gate, self.exchange
        assert self.inspection is not None
        try:
            outcome = await gate.engine.finish(self.inspection, response)
        except Exception as exc:  # WafEngineError, or a bug: count it, keep serving
            gate.stats.record_error(ex.app)
            log.error("the WAF could not finish %s: %r", ex.request_id.decode(), exc)
            return
        action: WafAction
        if self.blocked:
            action = "blocked"
        elif self.config.mode == "detect":
            action = "detected"
        else:
            action = "allowed"
        gate.stats.record(ex.app, action if outcome.rule_ids or self.blocked else "clean",
                          outcome.rule_ids)  # fmt: skip
        if not outcome.rule_ids and not self.blocked:
            return
        peer = ex.client.client_ip.decode()
        gate.events.add(
            event_of(
                app=ex.app,
                region=ex.edge.region,
                request_id=ex.request_id.decode(),
                time=self.at,
                client_ip=peer,
                method=ex.method.decode("latin-1"),
                path=self.url.decode("latin-1")[:2048],
                action=action,
                status=self.blocked,
                anomaly_score=outcome.anomaly_score,
                rule_ids=list(outcome.rule_ids),
            )
        )
