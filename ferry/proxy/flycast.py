"""The edge's Flycast listeners: requests to an app's private address, proxied as public ones.

The edge owns every Flycast address (``ferry.net.flycast``) without putting
them on an interface: each is an AnyIP route (``ip -6 route replace local
ADDR/128 dev lo``), so the kernel delivers what hosts and WireGuard peers send
there to sockets listening on ``[::]`` and never picks one as a source for
the edge's own connections. One listener per port the Flycast apps serve; a
connection's own address (``getsockname``) names the Flycast address dialled,
hence the app — never the Host header.

A connection is closed at once unless its address is a Flycast address, its
client is of that address's organization (``FlycastTable.admits``: the 6PN
network read off the client's address) and the app serves that port. A port with
the ``http`` handler makes it an ordinary ``ClientConnection`` of the edge's HTTP
side with its app fixed: the same routing, load balancing, concurrency limits,
wake-on-request (auto start) and statistics as public requests; no TLS and no
``force_https`` redirect (Flycast is plain HTTP, as on Fly). A port of a service
with no handler at all (raw TCP, e.g. Postgres on 5432) is spliced byte for byte
to one of the app's machines by the edge's ``TcpEdge``, as its public raw TCP
ports are. Ports with the ``tls`` handler are not served on Flycast.

``flycast_ports`` and ``flycast_tcp_ports`` are the pure part: which ports an app
serves over Flycast, and how.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from typing import cast

from ferry.net import iproute
from ferry.net.flycast import FlycastTable, is_flycast
from ferry.proxy.connection import ClientConnection
from ferry.proxy.http import HttpEdge
from ferry.proxy.routes import RouteTable
from ferry.proxy.tcp import TcpEdge

__all__ = ["FlycastListeners", "flycast_ports", "flycast_tcp_ports", "local_flycast_routes"]

log = logging.getLogger("ferry.proxy.flycast")

POLL_SECONDS = 0.5


def flycast_ports(table: RouteTable, app: str) -> frozenset[int]:
    """The ports ``app`` serves on its Flycast addresses: every port of its services with
    the ``http`` handler and without ``tls`` (an ``http_service`` gives 80). Pure."""
    return frozenset(
        port
        for backend in table.backends(app)
        for service in backend.services
        for port in service.http_ports
    )


def flycast_tcp_ports(table: RouteTable, app: str) -> frozenset[int]:
    """The ports ``app`` serves on its Flycast addresses as raw TCP: every port of its
    TCP services that have no handler at all. Pure."""
    return frozenset(
        port
        for backend in table.backends(app)
        for service in backend.services
        if service.protocol == "tcp" and not service.handlers
        for port in service.ports
    )


def local_flycast_routes(shown: str) -> set[ipaddress.IPv6Address]:
    """The Flycast addresses among ``ip -6 route show table local type local`` lines."""
    found = set()
    for line in shown.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "local":
            words = words[1:]
        with contextlib.suppress(ValueError):
            net = ipaddress.IPv6Network(words[0] if words else "", strict=False)
            if net.prefixlen == 128 and is_flycast(net.network_address):
                found.add(net.network_address)
    return found


class _Accept(asyncio.Protocol):
    """The first protocol of a Flycast connection: checks it, then hands the transport
    to a ``ClientConnection`` with the app fixed (or closes it)."""

    def __init__(self, owner: FlycastListeners) -> None:
        self.owner = owner

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, base)  # uvloop's TCP transports are not subclasses
        owner = self.owner
        local = transport.get_extra_info("sockname")
        peer = transport.get_extra_info("peername")
        table = owner.flycast()
        entry = table.lookup(str(local[0])) if local else None
        if entry is None or not peer or not table.admits(entry, str(peer[0])):
            owner.refused += 1
            transport.abort()  # not a Flycast address, or another organization's client
            return
        port, routes = int(local[1]), owner.routes()
        protocol: asyncio.Protocol
        if port in flycast_ports(routes, entry.app):
            conn = ClientConnection(owner.http)
            conn.fixed_app = entry.app
            protocol = conn
        elif owner.tcp is not None and port in flycast_tcp_ports(routes, entry.app):
            protocol = owner.tcp.client(entry.app, port)
        else:
            owner.refused += 1
            transport.abort()
            return
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


class FlycastListeners:
    """Keeps the AnyIP routes and ``[::]:port`` listeners matching the Flycast and route
    tables (``run``, on the edge's event loop); ``close`` stops listening and removes the
    routes. ``netns``: the namespace the routes go in (None: the process's own)."""

    def __init__(
        self,
        http: HttpEdge,
        flycast: Callable[[], FlycastTable],
        routes: Callable[[], RouteTable],
        *,
        host: str = "::",
        netns: str | None = None,
        manage_routes: bool = True,
        tcp: TcpEdge | None = None,
    ) -> None:
        self.http = http
        self.tcp = tcp
        self.flycast = flycast
        self.routes = routes
        self.host = host
        self.netns = netns
        self.manage_routes = manage_routes
        self.refused = 0
        self.servers: dict[int, asyncio.Server] = {}
        self._failed: set[int] = set()  # ports that could not be bound (logged once)
        self._retry = False  # the last pass left something undone: the next one tries again
        self._routed: set[ipaddress.IPv6Address] | None = None
        self._seen: tuple[FlycastTable, RouteTable] | None = None

    def wanted_ports(self) -> set[int]:
        table, routes = self.flycast(), self.routes()
        ports: set[int] = set()
        for app in table.apps:
            ports |= flycast_ports(routes, app)
            if self.tcp is not None:
                ports |= flycast_tcp_ports(routes, app)
        return ports

    async def sync(self) -> None:
        """One level-triggered pass: routes for exactly the table's addresses, a listener
        on every wanted port. Failures are logged; the next pass tries again."""
        table = self.flycast()
        self._retry = False
        if self.manage_routes:
            await self._sync_routes(set(table.entries))
        wanted = self.wanted_ports()
        loop = asyncio.get_running_loop()
        for port in sorted(wanted - set(self.servers)):
            try:
                self.servers[port] = await loop.create_server(
                    lambda: _Accept(self),
                    self.host,
                    port,
                    reuse_address=True,
                    backlog=1024,
                )
                self._failed.discard(port)
                log.info("flycast: listening on [%s]:%d", self.host, port)
            except OSError as exc:
                if port not in self._failed:
                    log.warning("flycast: cannot listen on port %d: %s", port, exc)
                self._failed.add(port)
                self._retry = True
        self._failed &= wanted
        for port in sorted(set(self.servers) - wanted):
            self.servers.pop(port).close()
            log.info("flycast: port %d closed (no Flycast app serves it)", port)

    async def _sync_routes(self, wanted: set[ipaddress.IPv6Address]) -> None:
        if self._routed is None:  # first pass: what an earlier run left
            shown = await asyncio.to_thread(
                iproute.ip, "-6", "route", "show", "table", "local", "type", "local",
                netns=self.netns, check=False,
            )  # fmt: skip
            self._routed = local_flycast_routes(shown)
        lines = [f"route replace local {a}/128 dev lo" for a in sorted(wanted - self._routed)]
        lines += [
            f"route del local {a}/128 dev lo table local" for a in sorted(self._routed - wanted)
        ]
        if not lines:
            return
        await asyncio.to_thread(iproute.ip_batch, lines, netns=self.netns, force=True)
        shown = await asyncio.to_thread(
            iproute.ip, "-6", "route", "show", "table", "local", "type", "local",
            netns=self.netns, check=False,
        )  # fmt: skip
        self._routed = local_flycast_routes(shown)  # what the kernel has, not what was asked
        if self._routed != wanted:
            self._retry = True
            log.warning(
                "flycast: routes for %d of %d addresses could not be set; trying again",
                len(wanted ^ self._routed), len(wanted),
            )  # fmt: skip
        else:
            log.info("flycast: %d addresses routed to this edge", len(wanted))

    async def run(self, poll: float = POLL_SECONDS) -> None:
        """Follow both tables until cancelled (a pass whenever either changes)."""
        while True:
            seen = (self.flycast(), self.routes())
            last = self._seen
            if last is None or seen[0] is not last[0] or seen[1] is not last[1] or self._retry:
                try:
                    await self.sync()
                    self._seen = seen
                except Exception:  # keep serving what is listening
                    log.exception("flycast: sync failed")
            await asyncio.sleep(poll)

    async def close(self, *, keep_routes: bool = False) -> None:
        """Stop listening; remove the routes unless ``keep_routes``. Idempotent."""
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        if self.manage_routes and not keep_routes and self._routed:
            await self._sync_routes(set())
