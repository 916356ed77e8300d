"""The host's side of Flycast's kernel path (``ferry.net.flycast_host``), kept by the agent.

The mesh thread hands over each region edge's published plan
(``HostFastView.plans``, from ``MeshSnapshot.fast``); the health thread, right
after each pass of its checks, works out which ports this host forwards to its
own machines (``HostFastPath.sync``) and loads ``table ip6 ferry_flycast_host``
when that changed. Each port's rule holds only while its element of the
table's ``alive`` set lives (``ALIVE_SECONDS``); the agent renews the elements
every ``REFRESH_SECONDS`` (the rules and their counters stay), so an agent
killed while, say, its Postgres primary is demoted stops sending connections
to it within seconds; they go to the edge, which follows its own checks. A
stopped agent empties the table (``close``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from ferry.agent.checks import machine_checks
from ferry.errors import FerryError, ValidationError
from ferry.model import Machine
from ferry.model.mesh import EdgeFastPlan
from ferry.net import nftables, sixpn
from ferry.net.flycast_fast import FastPort
from ferry.net.flycast_host import alive_refresh, host_fast_ports, host_ruleset

__all__ = ["ALIVE_SECONDS", "HostFastPath", "HostFastView", "passing_ports"]

log = logging.getLogger("ferry.agent.flycast")

ALIVE_SECONDS = 10
"""How long a loaded rule holds without the agent loading the table again."""
REFRESH_SECONDS = 3.0
"""How often the agent loads an unchanged table again (keeps its rules alive)."""


class HostFastView:
    """The region edges' published plans, written by the mesh thread (replaced whole)."""

    def __init__(self) -> None:
        self.plans: tuple[EdgeFastPlan, ...] = ()


def passing_ports(
    machines: Iterable[Machine], results: Callable[[Machine], list[dict[str, str]]]
) -> tuple[dict[ipaddress.IPv6Address, str], set[tuple[ipaddress.IPv6Address, int]]]:
    """The started machines' 6PN addresses (→ app) and the (address, internal port) of
    each service whose checks all pass now (one with no check passes while its machine
    is started; a cordoned machine takes no new connections). Pure given ``results``."""
    local: dict[ipaddress.IPv6Address, str] = {}
    passing: set[tuple[ipaddress.IPv6Address, int]] = set()
    for m in machines:
        if m.cordoned:
            continue
        try:
            sixpn.parse(m.private_ip)
        except ValidationError:
            continue  # no 6PN address (yet)
        address = ipaddress.IPv6Address(m.private_ip)
        local[address] = m.app_name
        status = {r["name"]: r["status"] for r in results(m)}
        names = list(machine_checks(m))
        for service in m.config.services:
            suffix = f"-{service.internal_port}"
            own = [n for n in names if n.startswith("servicecheck-") and n.endswith(suffix)]
            if all(status.get(n) == "passing" for n in own):
                passing.add((address, service.internal_port))
    return local, passing


class HostFastPath:
    """Keeps the host's table matching its region edge's plan and its own checks.
    Not thread-safe: the agent's health thread calls ``sync``."""

    def __init__(
        self,
        region: str,
        view: HostFastView,
        *,
        netns: str | None = None,
        apply: Callable[[str | None, str], None] = nftables.apply_ruleset,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        self.view = view
        self.netns = netns
        self._apply = apply
        self._clock = clock
        self._loaded: tuple[FastPort, ...] | None = None
        self._loaded_at = 0.0

    def plan(
        self,
        local: Mapping[ipaddress.IPv6Address, str],
        passing: set[tuple[ipaddress.IPv6Address, int]],
    ) -> tuple[FastPort, ...]:
        return host_fast_ports(self.view.plans, self.region, local, passing)

    def sync(
        self, machines: Iterable[Machine], results: Callable[[Machine], list[dict[str, str]]]
    ) -> None:
        """One level-triggered pass. Never raises: a refused load is logged (the kernel
        keeps what it had, whose rules expire) and tried again next pass."""
        planned = any(p.region == self.region and p.ports for p in self.view.plans)
        # No port of this region's edge: nothing to check the machines against.
        ports = self.plan(*passing_ports(machines, results)) if planned else ()
        now = self._clock()
        if ports == self._loaded:
            if not ports or now - self._loaded_at < REFRESH_SECONDS:
                return
            try:
                self._apply(self.netns, alive_refresh(ports, alive_seconds=ALIVE_SECONDS))
            except FerryError as exc:  # e.g. the table was deleted: load it whole next pass
                log.warning("flycast: host path not renewed: %s", exc)
                self._loaded = None
                return
            self._loaded_at = now
            return
        try:
            self._apply(self.netns, host_ruleset(ports, alive_seconds=ALIVE_SECONDS))
        except FerryError as exc:
            log.warning("flycast: host path not updated: %s", exc)
            return
        log.info(
            "flycast: this host forwards %s",
            ", ".join(f"{p.app} [{p.address}]:{p.port}" for p in ports)
            or "no port (connections go to the edge)",
        )
        self._loaded, self._loaded_at = ports, now

    def close(self) -> None:
        """Forward nothing more (connections go to the edge). Never raises."""
        try:
            self._apply(self.netns, host_ruleset((), alive_seconds=ALIVE_SECONDS))
        except FerryError as exc:
            log.warning("flycast: host path not removed: %s", exc)
        self._loaded = ()
