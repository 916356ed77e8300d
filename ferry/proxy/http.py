"""The HTTP edge: everything the per-connection code shares.

``HttpEdge`` holds the region, the route table callable, routing state
(load, health, a seeded ``random.Random``), the upstream pool, limits,
metrics and the precomputed header bytes. ``protocol()`` is the factory given
to ``loop.create_server``. ``sweep()`` runs the timeouts; the server calls it
every ``limits.tick`` seconds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ferry.model import DesiredState
from ferry.proxy.connection import ClientConnection
from ferry.proxy.headers import EdgeHeaders
from ferry.proxy.health import HealthBook
from ferry.proxy.limits import LoadTracker, ProxyLimits
from ferry.proxy.metrics import EdgeStats
from ferry.proxy.naming import HostRouter, RequestIds
from ferry.proxy.outbox import TurnWriter
from ferry.proxy.routes import Backend, RouteTable
from ferry.proxy.routing import (
    NO_PREFS,
    AppRoutes,
    Choice,
    FastRegions,
    NoRoute,
    RoutePrefs,
    Target,
    choose_target,
    fast_regions,
    pick_nearest_under_soft,
    plan_app_routes,
)
from ferry.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from ferry.proxy.statics import StaticsServer
    from ferry.proxy.waf_gate import WafGate
    from ferry.tls.bundle import EdgeTls

__all__ = ["EdgeSession", "HttpEdge", "NoStartedMachine"]

#: A nearer stopped machine is woken only if it saves at least this much RTT.
PREWARM_MARGIN_MS = 10.0
_FAR = float("inf")


class NoStartedMachine(Protocol):
    """Wake-on-request seam: called when an app has machines but none started.

    Start (or resume) one in or near ``region`` and return the machine to send
    the request to once it accepts connections (or True: route with the table
    as usual), or False to answer 503. It must bound its own wait.
    """

    def __call__(self, app: str, region: str) -> Awaitable[Backend | bool]: ...


class EdgeSession(Protocol):
    """A client connection other than an HTTP/1.1 ``ClientConnection`` (an HTTP/2 one):
    swept for its timeouts and closed at shutdown with the rest."""

    def check_deadline(self, now: float) -> None: ...

    def close(self) -> None: ...


class HttpEdge:
    """Shared state of one region's HTTP edge. Event-loop only (not thread-safe)."""

    def __init__(
        self,
        region: str,
        domain: str,
        table: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        *,
        public_port: int = 80,
        limits: ProxyLimits | None = None,
        stats: EdgeStats | None = None,
        health: HealthBook | None = None,
        load: LoadTracker | None = None,
        rng: random.Random | None = None,
        wake: NoStartedMachine | None = None,
        spill_rtt_ms: float = 0.0,
        backhaul: Mapping[str, tuple[str, int]] | None = None,
        trusted: bool = False,
        statics: StaticsServer | None = None,
        https_port: int = 0,
        tls: Callable[[], EdgeTls] | None = None,
    ) -> None:
        """``backhaul``: region -> that region's edge backhaul listener; requests for a
        machine there go through it. ``trusted``: this is a backhaul listener (its
        clients are other edges, whose forwarding headers pass through).
        ``statics``: answers the apps' ``[[statics]]`` before routing.
        ``https_port``: the edge's public HTTPS port (0: no TLS listener; then
        ``force_https`` redirects nothing, there being nowhere to send the client).
        ``tls``: the current TLS snapshot, whose ACME HTTP-01 tokens are answered
        before routing."""
        self.region = region
        self.backhaul = dict(backhaul or {})
        self.trusted = trusted
        self.table = table
        self.rtt_ms = {**rtt_ms, region: 0.0}
        self.limits = limits or ProxyLimits()
        self.stats = stats or EdgeStats(region)
        self.health = health or HealthBook(cooldown=self.limits.unhealthy_cooldown)
        self.load = load or LoadTracker(max_waiters=self.limits.queue_max_waiters)
        self.rng = rng or random.Random()
        self.wake = wake
        self.statics = statics
        self.waf: WafGate | None = None  # set by the gate while any app is inspected
        self.tls = tls
        self.spill_rtt_ms = spill_rtt_ms
        self.headers = EdgeHeaders(region, public_port)
        self.https_port = https_port
        self.tls_headers = EdgeHeaders(region, https_port or 443, tls=True)
        self.hosts = HostRouter(domain)
        self.request_ids = RequestIds(region)
        self.turn = TurnWriter()
        self.pool = UpstreamPool(
            turn=self.turn,
            max_idle_per_backend=self.limits.upstream_idle_per_backend,
            idle_timeout=self.limits.upstream_idle_timeout,
            connect_timeout=self.limits.connect_timeout,
        )
        self.connections: set[ClientConnection] = set()
        self.sessions: set[EdgeSession] = set()
        self._routes_for: RouteTable | None = None
        self._routes: dict[str, AppRoutes] = {}
        self._fast: dict[str, FastRegions] = {}
        self._stopped_rtt: dict[str, float] = {}  # app -> RTT to its nearest wakeable machine
        self._force_https: dict[str, bool] = {}
        self._prewarming: set[str] = set()
        # time.monotonic, not loop.time: uvloop's clock is cached per loop turn in ms.
        self.now: Callable[[], float] = time.monotonic
        # Deadlines are computed from this coarse clock (set by every sweep) plus
        # one tick, so they never fire early and cost no clock read per request.
        self.clock = self.now() + self.limits.tick

    def protocol(self) -> ClientConnection:
        return ClientConnection(self)

    def routes_for(self, app: str) -> AppRoutes | None:
        """The app's route plan for the current table; None when the table has no such app.

        Plans are cached per table snapshot: one table call and one dict
        probe per request.
        """
        table = self.table()
        if table is not self._routes_for:
            self._routes_for = table
            self._routes = {}
            self._fast = {}
            self._stopped_rtt = {}
            self._force_https = {}
        routes = self._routes.get(app)
        if routes is None and app in table.apps:
            routes = plan_app_routes(app, table.backends(app), self.rtt_ms)
            self._routes[app] = routes
            self._fast[app] = fast_regions(routes)
        return routes

    def forces_https(self, app: str) -> bool:
        """Whether ``app`` asks for ``force_https`` on its HTTP service (any machine's
        config says so: during a deploy that turns it on, the new setting wins at once).

        Call after ``routes_for`` in the same loop turn (the cache follows its table).
        """
        forced = self._force_https.get(app)
        if forced is None:
            forced = any(
                service.force_https and "http" in service.handlers
                for backend in self.table().backends(app)
                for service in backend.services
            )
            self._force_https[app] = forced
        return forced

    def serves(self, app: str) -> bool:
        """Whether the current table knows ``app`` (any machine, started or not)."""
        return app in self.table().apps

    def choose(
        self, app: str, prefs: RoutePrefs, routes: AppRoutes | None = None
    ) -> Target | NoRoute:
        """Route one request of ``app`` with the current table, load and health.

        ``routes`` (from ``routes_for`` in the same loop turn) saves a lookup.
        """
        if routes is None:
            routes = self.routes_for(app)
            if routes is None:
                return NoRoute("no_service", f"{app} is not in the route table")
        load = self.load.load
        health = self.health.health
        if prefs is NO_PREFS:
            fast = self._fast.get(routes.app)
            if fast is not None:
                target = pick_nearest_under_soft(fast, load, health, self.rng)
                if target is not None:
                    return target
        decision = choose_target(
            routes, load, health, prefs, self.rng,
            spill_rtt_ms=self.spill_rtt_ms, checked=self.health.checked,
        )  # fmt: skip
        return decision.target if isinstance(decision, Choice) else decision

    def prewarm(self, app: str, target_region: str | None) -> None:
        """Wake a stopped machine of ``app`` that may autostart, in the background, for
        the requests that follow (the current one is not held).

        ``target_region`` set: the request crosses the WAN to it; wake only a machine
        that is nearer (beyond Fly: demand moving to a region pays the WAN only until
        its own machine is up). ``None``: the chosen machines are at their soft limit
        or the hard limit (Fly's autostart): wake the nearest stopped one.
        """
        if self.wake is None or app in self._prewarming:
            return
        nearest = self._stopped_rtt.get(app)
        if nearest is None:
            table = self.table()
            nearest = min(
                (
                    self.rtt_ms.get(b.region, _FAR)
                    for b in table.backends(app)
                    if not b.started
                    and b.desired_state is not DesiredState.DESTROYED
                    and all(s.autostart for s in b.services)
                ),
                default=_FAR,
            )
            self._stopped_rtt[app] = nearest
        if nearest == _FAR:
            return
        if target_region is not None and nearest + PREWARM_MARGIN_MS >= self.rtt_ms.get(
            target_region, _FAR
        ):
            return
        self._prewarming.add(app)
        task = asyncio.get_running_loop().create_task(self._prewarm(app))
        task.add_done_callback(lambda _t: self._prewarming.discard(app))

    async def _prewarm(self, app: str) -> None:
        assert self.wake is not None
        await self.wake(app, self.region)

    def sweep(self) -> None:
        """Apply header, idle and response timeouts; close stale pooled connections."""
        now = self.now()
        self.clock = now + self.limits.tick
        for conn in list(self.connections):
            conn.check_deadline(now)
        for session in list(self.sessions):
            session.check_deadline(now)
        self.pool.sweep(now)

    def close(self) -> None:
        """Close every client and pooled connection (shutdown)."""
        for session in list(self.sessions):
            session.close()
        for conn in list(self.connections):
            conn.close()
        self.pool.close_all()
        self.health.close()
