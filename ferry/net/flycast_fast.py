"""Flycast's kernel path: raw TCP Flycast connections forwarded by the edge's kernel.

The edge splices a raw TCP Flycast connection (``DATABASE_URL``'s
``<db>.flycast:5432``) byte for byte in Python (``ferry.proxy.tcp``): two
extra socket hops and an event-loop turn each way per statement, which cost
Postgres clients 40 to 70% of their throughput on this machine (bench/RESULTS.md).
When every machine the edge would pick for such a port is on a host of its
LAN (``ferry.net.flycast_lan``), its kernel forwards the connection instead:

- ``to_machines`` (NAT, prerouting): a new connection to the Flycast address
  and port from the address's own organization (its /48), arriving over the
  LAN (Ethernet), is sent to one of the machines' 6PN address and internal
  port (round robin among several). Clients over WireGuard (a remote host, a
  developer's peer, whose gateway forwards nothing but its own) keep the
  listeners;
- ``lan_route`` (prerouting): both directions of such a connection carry the
  mark of the edge's Flycast answers, so ``REPLY_TABLE`` routes them over the
  LAN link (the machine's host there, the client's host back);
- ``from_edge`` (NAT, postrouting): the connection leaves with the edge's own
  mesh address as its source — network 0, which hosts admit as the platform
  opening connections to machines; the machine's answers come back to the
  edge over the LAN (hosts route that address there), and conntrack undoes both
  translations. The client sees the Flycast address, as before.

A port, an address or a connection not in the table is the edge's listeners'
as before (``ferry.proxy.flycast``): connections the kernel forwards keep
their machine when the table changes. Pure: no I/O
(``ferry.proxy.flycast_fast`` decides the ports and applies the script).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ferry.model.mesh import EdgeFastPlan, FastForward
from ferry.net.flycast_lan import REPLY_MARK

__all__ = ["TABLE", "FastPort", "destination", "fast_ruleset", "published"]

TABLE = "ferry_flycast_fast"
"""The edge's nftables table (``ip6`` family); nothing else is touched."""


@dataclass(frozen=True, order=True)
class FastPort:
    """One Flycast address and port the kernel forwards: to ``targets`` (6PN addresses)
    on ``target_port``, for clients in ``organization`` only."""

    address: ipaddress.IPv6Address
    port: int
    organization: ipaddress.IPv6Network
    targets: tuple[ipaddress.IPv6Address, ...]
    target_port: int
    app: str


def destination(port: FastPort) -> str:
    """The ``dnat`` statement sending a connection to one of ``port``'s targets."""
    if len(port.targets) == 1:
        return f"dnat ip6 to [{port.targets[0]}]:{port.target_port}"
    choices = ", ".join(
        f"{i} : {target} . {port.target_port}" for i, target in enumerate(port.targets)
    )
    return f"dnat ip6 addr . port to numgen inc mod {len(port.targets)} map {{ {choices} }}"


def published(ports: Sequence[FastPort]) -> EdgeFastPlan:
    """What the edge tells the control plane it forwards (``EdgeFastPlan``)."""
    return EdgeFastPlan(
        ports=[
            FastForward(
                address=str(p.address),
                port=p.port,
                organization=str(p.organization),
                targets=[str(t) for t in p.targets],
                target_port=p.target_port,
                app=p.app,
            )
            for p in sorted(ports)
            if p.targets
        ]
    )


def fast_ruleset(ports: Sequence[FastPort], source: ipaddress.IPv6Address | None) -> str:
    """The edge's ``table ip6 ferry_flycast_fast`` as one ``nft -f`` script (replaces it
    whole). Without ``source`` (the edge has no mesh address yet) or ports, the table
    forwards nothing: every Flycast connection reaches the edge's listeners."""
    usable = sorted(p for p in ports if p.targets) if source is not None else []
    addresses = sorted({p.address for p in usable})
    elements = f" elements = {{ {', '.join(map(str, addresses))} }};" if addresses else ""
    forwards = [
        f"    meta iiftype ether ip6 daddr {p.address} tcp dport {p.port}"
        f" ip6 saddr {p.organization}"
        f' counter {destination(p)} comment "{p.app}"'
        for p in usable
    ]
    from_edge = (
        [f"    ct status dnat ct original ip6 daddr @fast snat ip6 to {source}"] if usable else []
    )
    return "\n".join(
        [
            f"table ip6 {TABLE}",
            f"delete table ip6 {TABLE}",
            f"table ip6 {TABLE} {{",
            f"  set fast {{ type ipv6_addr;{elements} }}",
            "  chain to_machines {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *forwards,
            "  }",
            "  chain lan_route {",
            "    type filter hook prerouting priority mangle; policy accept;",
            f"    ct original ip6 daddr @fast meta mark set {REPLY_MARK:#x}",
            "  }",
            "  chain from_edge {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            *from_edge,
            "  }",
            "}",
            "",
        ]
    )
