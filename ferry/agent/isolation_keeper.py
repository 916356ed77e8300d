"""The agent's side of isolation: keep the host's nftables ruleset matching its machines.

Level-triggered: after every reconcile pass the agent hands the live machines
to ``IsolationKeeper.sync``, which finds each machine's host-side veth (the
peer of its ``eth0``: a machine may have taken a namespace made ahead of time,
whose veth is not named after it), renders the ruleset
(``ferry.net.isolation``) and loads it only when it changed. A failure is
logged and tried again next pass; the rules already loaded stay in force.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ferry.errors import FerryError, ValidationError
from ferry.model import Machine, MachineState
from ferry.net import nftables, sixpn
from ferry.net.iproute import ip, netns_exists
from ferry.net.isolation import (
    DNS_SERVICES,
    INFRA_PREFIX,
    HostIsolation,
    MachinePort,
    Network,
    Service,
    render_ruleset,
)

__all__ = ["IsolationKeeper", "IsolationSettings", "parse_service"]

log = logging.getLogger("ferry.agent.isolation")

#: The name of a machine's network namespace, from its id.
NetnsOf = Callable[[str], str]


@dataclass(frozen=True)
class IsolationSettings:
    """Who may open connections to machines, what machines never reach (CIDRs), and
    what they may reach all the same (``ADDRESS:PORT/PROTO``, e.g. the edge's public
    address on 80/tcp and 443/tcp: it is in the protected range of the cluster)."""

    enabled: bool = False
    edge_sources: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    services: tuple[str, ...] = ()


def parse_service(text: str) -> Service:
    """``10.1.0.1:80/tcp`` or ``[fd00::1]:443/tcp`` (no protocol: tcp) as a ``Service``;
    ``ValidationError`` naming what is wrong."""
    where, _, protocol = text.partition("/")
    host, sep, port = where.rpartition(":")
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        number = int(port)
    except ValueError:
        number, address = 0, None
    protocol = protocol or "tcp"
    if not sep or address is None or not 0 < number < 65536 or protocol not in ("tcp", "udp"):
        raise ValidationError(
            f"service {text!r} is not ADDRESS:PORT/PROTO",
            hint="e.g. 10.1.0.1:80/tcp or [fd00::1]:443/tcp",
        )
    return Service(address, "tcp" if protocol == "tcp" else "udp", number)


class IsolationKeeper:
    def __init__(
        self, settings: IsolationSettings, netns_name: NetnsOf, bridge: str, mesh: tuple[str, ...]
    ) -> None:
        self.settings = settings
        self.netns_name = netns_name
        self.bridge = bridge
        self.mesh = mesh
        self._loaded = ""
        self._veths: dict[str, str] = {}  # machine id -> host-side veth

    def sync(self, machines: Iterable[Machine]) -> bool:
        """Load the ruleset for ``machines`` if it differs from the loaded one; True if loaded."""
        if not self.settings.enabled:
            return False
        ports = []
        live = {m.id for m in machines if m.state is not MachineState.DESTROYED}
        self._veths = {k: v for k, v in self._veths.items() if k in live}
        for m in machines:
            port = self._port(m)
            if port is not None:
                ports.append(port)
        host = HostIsolation(
            machines=tuple(sorted(ports, key=lambda p: p.veth)),
            mesh_interfaces=self.mesh,
            bridge=self.bridge,
            services=(*DNS_SERVICES, *(parse_service(t) for t in self.settings.services)),
            edge_sources=(INFRA_PREFIX, *_networks(self.settings.edge_sources)),
            protected=_networks(self.settings.protected),
        )
        text = render_ruleset(host)
        if text == self._loaded:
            return False
        try:
            nftables.apply_ruleset(None, text)
        except FerryError as exc:
            log.error("isolation rules not loaded (the previous ones stay): %s", exc)
            return False
        self._loaded = text
        log.info("isolation: ruleset loaded for %d machines", len(ports))
        return True

    def _port(self, m: Machine) -> MachinePort | None:
        if m.state is MachineState.DESTROYED or not m.host_ip:
            return None
        try:
            address = sixpn.parse(m.private_ip)
        except ValidationError:
            return None
        veth = self._veths.get(m.id) or self._find_veth(m.id)
        if veth is None:
            return None  # no namespace yet: nothing of it to let through or keep out
        self._veths[m.id] = veth
        return MachinePort(
            veth=veth,
            ipv4=ipaddress.IPv4Address(m.host_ip),
            sixpn=ipaddress.IPv6Address(m.private_ip),
            network=address.network,
        )

    def _find_veth(self, machine_id: str) -> str | None:
        """The host-side end of the machine's ``eth0`` (by its peer's ifindex)."""
        netns = self.netns_name(machine_id)
        if not netns_exists(netns):
            return None  # a stopped machine's: no exec for it each pass
        shown = ip("-j", "link", "show", "eth0", netns=netns, check=False)
        try:
            peer_index = int(json.loads(shown)[0]["link_index"])
            links = json.loads(ip("-j", "link", "show"))
        except (ValueError, KeyError, IndexError, TypeError, FerryError):
            return None
        return next((str(li["ifname"]) for li in links if li.get("ifindex") == peer_index), None)


def _networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)
