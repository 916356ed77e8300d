"""Flycast's kernel path on the client's own host: the edge's choice, without the trip.

A region's edge forwards a raw TCP Flycast port in its kernel when it would
pick only machines on its LAN (``ferry.net.flycast_fast``), and publishes what
it forwards (``EdgeFastPlan``, ``PUT /v1/edges/{region}/flycast-fast``; the
control plane hands it to every node in the mesh snapshot). A host of that
region on which *every* target of such a port runs sends its own machines'
connections to them directly (``table ip6 ferry_flycast_host``): DNAT in
prerouting from the Flycast address and port to the machine's 6PN address and
internal port. Both machines are the host's, so the packets never leave it;
machines of a host reach each other through its routing table, and the
isolation firewall sees one organization's 6PN on both ends, as for a direct
connection. The client sees the Flycast address, the machine the client's own
6PN address.

The host takes a port only while its own checks of each target pass
(``host_fast_ports``): a primary demoted or stopped while the control plane is
down leaves the table within one pass of the agent's checks, and connections
go to the edge again, which follows its own checks. Connections already
forwarded keep their machine. Pure: no I/O (``ferry.agent.flycast_host`` applies it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping, Sequence

from ferry.errors import ValidationError
from ferry.model.mesh import EdgeFastPlan, FastForward
from ferry.net import sixpn
from ferry.net.flycast import is_flycast
from ferry.net.flycast_fast import FastPort, destination

__all__ = ["TABLE", "alive_refresh", "checked_plan", "host_fast_ports", "host_ruleset"]

TABLE = "ferry_flycast_host"
"""The host's nftables table (``ip6`` family); nothing else is touched."""

MAX_PORTS = 4096
MAX_TARGETS = 64


def _port_number(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise ValidationError(f"{what} {value} is not a TCP port", hint="1 to 65535")
    return value


def _checked_forward(forward: FastForward) -> FastForward:
    where = f"{forward.app} [{forward.address}]:{forward.port}"
    hint = "publish what the edge's kernel forwards (ferry.proxy.flycast_fast)"
    if not is_flycast(forward.address):
        raise ValidationError(f"{where}: {forward.address!r} is not a Flycast address", hint=hint)
    network = sixpn.parse(forward.address).network
    organization = str(sixpn.org_prefix(network))
    if forward.organization != organization:
        raise ValidationError(
            f"{where}: organization {forward.organization!r} is not the address's ({organization})",
            hint=hint,
        )
    if not forward.app or len(forward.app) > 63:
        raise ValidationError(f"{where}: an app name of 1 to 63 characters", hint=hint)
    if not 1 <= len(forward.targets) <= MAX_TARGETS:
        raise ValidationError(f"{where}: 1 to {MAX_TARGETS} targets", hint=hint)
    for target in forward.targets:
        try:
            parsed = sixpn.parse(target)
        except ValidationError as exc:
            raise ValidationError(f"{where}: target {target!r}: {exc}", hint=hint) from exc
        if parsed.network != network or is_flycast(target):
            raise ValidationError(
                f"{where}: target {target} is not a machine of the address's organization",
                hint=hint,
            )
    _port_number(forward.port, f"{where}: port")
    _port_number(forward.target_port, f"{where}: target port")
    return forward.model_copy(
        update={
            "address": str(ipaddress.IPv6Address(forward.address)),
            "targets": sorted(str(ipaddress.IPv6Address(t)) for t in forward.targets),
        }
    )


def checked_plan(region: str, plan: EdgeFastPlan) -> EdgeFastPlan:
    """``plan`` as ``region``'s edge's, addresses written one way; ``ValidationError``
    naming the first entry that is not a Flycast port of one organization's machines."""
    if len(plan.ports) > MAX_PORTS:
        raise ValidationError(
            f"{len(plan.ports)} ports; at most {MAX_PORTS}", hint="one entry per Flycast port"
        )
    ports = sorted((_checked_forward(p) for p in plan.ports), key=lambda p: (p.address, p.port))
    return EdgeFastPlan(region=region, ports=ports)


def host_fast_ports(
    plans: Sequence[EdgeFastPlan],
    region: str,
    local: Mapping[ipaddress.IPv6Address, str],
    passing: Collection[tuple[ipaddress.IPv6Address, int]],
) -> tuple[FastPort, ...]:
    """The ports this host forwards itself: those of its region's edge's plan whose
    targets are all machines of the port's app on this host (``local``: 6PN address →
    app) with every check of the target port's service passing (``passing``: (6PN
    address, internal port)). Pure."""
    found = []
    for plan in plans:
        if plan.region != region:
            continue
        for forward in plan.ports:
            targets = tuple(sorted(ipaddress.IPv6Address(t) for t in forward.targets))
            if not targets or any(
                local.get(t) != forward.app or (t, forward.target_port) not in passing
                for t in targets
            ):
                continue
            found.append(
                FastPort(
                    ipaddress.IPv6Address(forward.address),
                    forward.port,
                    ipaddress.IPv6Network(forward.organization),
                    targets,
                    forward.target_port,
                    forward.app,
                )
            )
    return tuple(sorted(found))


def _elements(ports: Sequence[FastPort], alive_seconds: int) -> str:
    return ", ".join(f"{p.address} . {p.port} timeout {alive_seconds}s" for p in ports)


def alive_refresh(ports: Sequence[FastPort], *, alive_seconds: int) -> str:
    """An ``nft -f`` script giving the loaded ports' rules ``alive_seconds`` more (the
    rules and their counters stay; fails when the table is not there: load it whole)."""
    elements = _elements(sorted(p for p in ports if p.targets), alive_seconds)
    return "\n".join(
        [
            f"flush set ip6 {TABLE} alive",
            *([f"add element ip6 {TABLE} alive {{ {elements} }}"] if elements else []),
            "",
        ]
    )


def host_ruleset(ports: Sequence[FastPort], *, alive_seconds: int) -> str:
    """The host's ``table ip6 ferry_flycast_host`` as one ``nft -f`` script (replaces it
    whole; with no ports it forwards nothing: connections go to the edge). A port's
    rule holds while its element of ``alive`` does: ``alive_seconds`` after the load."""
    usable = sorted(p for p in ports if p.targets)
    elements = _elements(usable, alive_seconds)
    # A target's own connection to the address is left to the edge: sent back to its own
    # address, the answer would stay inside the machine, never un-NATed by the host.
    forwards = [
        f"    ip6 daddr {p.address} tcp dport {p.port} ip6 saddr {p.organization}"
        f" ip6 saddr != {{ {', '.join(map(str, p.targets))} }} ip6 daddr . tcp dport @alive"
        f' counter {destination(p)} comment "{p.app}"'
        for p in usable
    ]
    return "\n".join(
        [
            f"table ip6 {TABLE}",
            f"delete table ip6 {TABLE}",
            f"table ip6 {TABLE} {{",
            "  set alive {",
            "    type ipv6_addr . inet_service; flags timeout;",
            *([f"    elements = {{ {elements} }}"] if elements else []),
            "  }",
            "  chain to_local {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *forwards,
            "  }",
            "}",
            "",
        ]
    )
