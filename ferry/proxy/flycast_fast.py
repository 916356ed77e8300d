"""The edge's side of Flycast's kernel path (``ferry.net.flycast_fast``): which raw TCP
Flycast ports its kernel forwards, kept in nftables as the tables and health change.

A raw TCP Flycast port (a service with no handler, as Postgres' 5432) of an app
is forwarded by the kernel when all of this holds (``fast_targets``), else its
connections stay with the edge's listeners, which splice them in Python:

- the service stops no machine by itself (``auto_stop_machines`` off: the edge
  would not see the connections that keep a machine busy) and has no
  ``hard_limit`` (the kernel counts no connections);
- the machines the edge would pick — the nearest region with a machine in
  rotation — all have a 6PN address on a host of the edge's LAN whose MAC
  address the edge's checks know (``EdgeLanView``), and the same internal port;
- each of them, if its service has checks, has passed one already and fails
  none (a check not run yet does not count as passing: a Postgres replica's
  ``/primary`` check fails, the primary's passes).

When none is left (all failing, all stopped: auto start needs the listeners)
the port leaves the table within a poll and new connections reach the
listeners (which close them while no machine is started: a raw TCP connection
starts none). Connections the kernel already forwards keep their machine.

The edge publishes what its kernel forwards (``publish``: ``PUT
/v1/edges/{region}/flycast-fast``) whenever that changes and every
``REPUBLISH_SECONDS`` (the control plane keeps it in memory only): a host whose
own machines are all of a port's targets then forwards its machines'
connections itself (``ferry.net.flycast_host``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from ferry.errors import FerryError
from ferry.model.mesh import EdgeFastPlan
from ferry.net import iproute, nftables, sixpn
from ferry.net.flycast import FlycastTable
from ferry.net.flycast_fast import FastPort, fast_ruleset, published
from ferry.net.flycast_lan import LanHost
from ferry.net.flycast_lan_sync import EdgeLanView
from ferry.proxy.flycast import flycast_tcp_ports
from ferry.proxy.health import HealthBook
from ferry.proxy.routes import RouteTable
from ferry.proxy.routing import plan_app_routes, service_for_port

__all__ = ["FlycastFastPath", "fast_targets", "plan_fast_ports"]

log = logging.getLogger("ferry.proxy.flycast")

POLL_SECONDS = 0.25
"""How soon a failed health check moves a port's new connections (a primary's failover)."""
REPUBLISH_SECONDS = 15.0
"""How often the edge tells the control plane its plan unchanged (a restarted one forgot it)."""
RETRY_SECONDS = 2.0
"""How soon a publication that failed is tried again."""
_NEVER = object()


def _lan_networks(hosts: Sequence[LanHost]) -> list[ipaddress.IPv6Network]:
    return [ipaddress.IPv6Network(p, strict=False) for h in hosts for p in h.prefixes]


def fast_targets(
    routes: RouteTable,
    app: str,
    port: int,
    rtt_ms: Mapping[str, float],
    health: Mapping[str, bool],
    reported: Collection[str],
    lan: Sequence[ipaddress.IPv6Network],
) -> tuple[tuple[ipaddress.IPv6Address, ...], int] | None:
    """The 6PN addresses and internal port the kernel may send ``app``'s ``port`` to, or
    None when the edge's listeners must keep it (see the module's rule). Pure."""
    for _, targets in plan_app_routes(app, routes.backends(app), rtt_ms, public_port=port).regions:
        usable = []
        for target in targets:
            backend = target.backend
            service = service_for_port(backend, port)
            if service is None or service.autostop != "off" or target.hard_limit is not None:
                return None
            if not health.get(backend.machine_id, True):
                continue
            if service.checks and backend.machine_id not in reported:
                continue
            usable.append(target)
        if not usable:
            continue  # the next region, as routing would
        addresses = []
        for target in usable:
            try:
                address = ipaddress.IPv6Address(target.backend.sixpn)
            except ValueError:
                return None
            if not any(address in net for net in lan):
                return None
            addresses.append(address)
        if len({t.port for t in usable}) != 1:
            return None
        return tuple(sorted(addresses)), usable[0].port
    return None


def plan_fast_ports(
    flycast: FlycastTable,
    routes: RouteTable,
    rtt_ms: Mapping[str, float],
    health: Mapping[str, bool],
    reported: Collection[str],
    lan: Sequence[LanHost],
) -> tuple[FastPort, ...]:
    """Every Flycast address and raw TCP port the kernel forwards now. Pure."""
    networks = _lan_networks(lan)
    if not networks:
        return ()
    planned = []
    for entry in flycast.entries.values():
        for port in sorted(flycast_tcp_ports(routes, entry.app)):
            found = fast_targets(routes, entry.app, port, rtt_ms, health, reported, networks)
            if found is None:
                continue
            targets, target_port = found
            organization = sixpn.org_prefix(entry.network)
            planned.append(
                FastPort(entry.address, port, organization, targets, target_port, entry.app)
            )
    return tuple(sorted(planned))


class FlycastFastPath:
    """Keeps ``table ip6 ferry_flycast_fast`` matching the plan (``run``, on the edge's
    event loop; ``nft`` runs in a thread). ``netns``: None is the process's own."""

    def __init__(
        self,
        flycast: Callable[[], FlycastTable],
        routes: Callable[[], RouteTable],
        rtt_ms: Mapping[str, float],
        health: HealthBook,
        view: EdgeLanView,
        *,
        netns: str | None = None,
        apply: Callable[[str | None, str], None] = nftables.apply_ruleset,
        publish: Callable[[EdgeFastPlan], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flycast = flycast
        self.routes = routes
        self.rtt_ms = rtt_ms
        self.health = health
        self.view = view
        self.netns = netns
        self._apply = apply
        # What the kernel has: the ports and source last loaded (None: nothing loaded yet).
        self._loaded: tuple[tuple[FastPort, ...], ipaddress.IPv6Address | None] | None = None
        self._forwarding = False
        self._publish = publish
        self._clock = clock
        # The loaded state the control plane was last told of (a sentinel: never), and when
        # to tell it again.
        self._published: object = _NEVER
        self._publish_at = 0.0

    def plan(self) -> tuple[FastPort, ...]:
        return plan_fast_ports(
            self.flycast(),
            self.routes(),
            self.rtt_ms,
            self.health.health,
            self.health.reported,
            self.view.hosts,
        )

    async def sync(self) -> None:
        """One level-triggered pass: load the table when the plan (or the edge's source
        address) differs from what was loaded. Raises ``FerryError`` (the table is then
        as it was)."""
        wanted = (self.plan(), self.view.source)
        if wanted == self._loaded:
            return
        ports = wanted[0]
        if ports and not self._forwarding:
            await asyncio.to_thread(
                iproute.set_sysctl, self.netns, "net.ipv6.conf.all.forwarding", "1"
            )
            self._forwarding = True
        await asyncio.to_thread(self._apply, self.netns, fast_ruleset(*wanted))
        self._loaded = wanted
        log.info(
            "flycast: the kernel forwards %s",
            ", ".join(f"{p.app} [{p.address}]:{p.port} -> {len(p.targets)}" for p in ports)
            or "no port (the listeners take every connection)",
        )

    def forwarded(self) -> EdgeFastPlan:
        """What the kernel forwards now, as the control plane is told it."""
        if self._loaded is None or self._loaded[1] is None:
            return EdgeFastPlan()
        return published(self._loaded[0])

    async def publish_due(self) -> None:
        """Tell the control plane what the kernel forwards, when that changed since it
        was last told or ``REPUBLISH_SECONDS`` passed. Raises ``FerryError`` (tried
        again after ``RETRY_SECONDS``)."""
        if self._publish is None:
            return
        loaded, now = self._loaded, self._clock()
        if loaded == self._published and now < self._publish_at:
            return
        self._publish_at = now + RETRY_SECONDS
        await asyncio.to_thread(self._publish, self.forwarded())
        self._published, self._publish_at = loaded, now + REPUBLISH_SECONDS

    async def run(self, poll: float = POLL_SECONDS) -> None:
        """Follow the tables, health and LAN until cancelled."""
        while True:
            try:
                await self.sync()
            except FerryError as exc:  # keep what the kernel has; try again next poll
                log.warning("flycast: kernel path not updated: %s", exc)
            try:
                await self.publish_due()
            except FerryError as exc:  # hosts keep the plan they have, gated by their checks
                log.warning("flycast: kernel path not published: %s", exc)
            await asyncio.sleep(poll)

    async def close(self) -> None:
        """Forward nothing more: new connections go to the listeners. Idempotent."""
        if self._loaded is None:
            return
        await asyncio.to_thread(self._apply, self.netns, fast_ruleset((), None))
        self._loaded = None
