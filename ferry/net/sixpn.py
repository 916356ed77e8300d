"""6PN addressing: every organization's private IPv6 network, in Fly's layout.

A machine's private address lives in a /112 of ``fdaa::/16``::

    fdaa : NNNN:NNNN : HHHH:HHHH : MMMM:MMMM : 0002
    16 b   network     host        machine     16 b free

``network`` is the organization's 6PN number (never 0), ``host`` the number of
the host the machine was placed on, ``machine`` the machine's number on that
host. So one organization's addresses share the /48 ``fdaa:NNNN:NNNN::/48``
(``org_prefix``), whatever host or region they are on, and the organization of
any 6PN address is read off the address itself (``parse``) — which is how the
DNS server knows who asks and the firewall knows who may talk to whom.

Network 0 belongs to the platform: ``fdaa::3`` is the resolver every machine
asks (as on Fly), ``infra_address(host)`` is the address a host has on the
mesh and ``edge_address(n)`` a region edge's. Numbers are 32-bit and start
at 1; ``lowest_free`` picks the next one. Pure: no I/O, no store.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ferry.errors import ValidationError

SIXPN = ipaddress.IPv6Network("fdaa::/16")
"""Every 6PN address, of every organization and of the platform."""

DNS_ADDRESS = ipaddress.IPv6Address("fdaa::3")
"""The ``.internal`` resolver, answered on every host (Fly's ``fdaa::3``)."""

INFRA_NETWORK = 0
"""The platform's own network number: hosts, edges, the resolver."""

MACHINE_PREFIXLEN = 112
ORG_PREFIXLEN = 48
HOST_PREFIXLEN = 80
MAX_NUMBER = 0xFFFF_FFFF
MAX_HOST = MAX_NUMBER - 1
"""Host numbers stop here: host ``MAX_NUMBER`` holds Flycast addresses (``ferry.net.flycast``)."""
_MACHINE_SUFFIX = 2  # the machine's address inside its /112, as on Fly
_INFRA_SUFFIX = 1  # a host's or an edge's own address inside its /112


@dataclass(frozen=True, order=True)
class SixpnAddress:
    """The three numbers a 6PN address is made of."""

    network: int
    host: int
    machine: int

    def __post_init__(self) -> None:
        for name, value in (
            ("network", self.network),
            ("host", self.host),
            ("machine", self.machine),
        ):
            _check_number(name, value, allow_zero=True)

    @property
    def address(self) -> ipaddress.IPv6Address:
        """The machine's address (``…:2``), or a host's own (``…:1``) for machine 0."""
        suffix = _INFRA_SUFFIX if self.machine == 0 else _MACHINE_SUFFIX
        return self.prefix[suffix]

    @property
    def prefix(self) -> ipaddress.IPv6Network:
        """The /112 this address is the ``:2`` (or ``:1``) of."""
        value = (0xFDAA << 112) | (self.network << 80) | (self.host << 48) | (self.machine << 16)
        return ipaddress.IPv6Network((value, MACHINE_PREFIXLEN))


def machine_address(network: int, host: int, machine: int) -> ipaddress.IPv6Address:
    """The private address of machine number ``machine`` (≥ 1) of ``host`` in ``network``.

    Raises ``ValidationError`` when a number is out of range (network and machine
    ≥ 1 here: network 0 and machine 0 are the platform's).
    """
    _check_number("network", network)
    _check_number("machine", machine)
    return SixpnAddress(network, host, machine).address


def infra_address(host: int) -> ipaddress.IPv6Address:
    """The mesh address of host (or edge) number ``host``, in the platform's network."""
    return SixpnAddress(INFRA_NETWORK, host, 0).address


def edge_address(edge: int) -> ipaddress.IPv6Address:
    """The mesh address of edge number ``edge`` (≥ 1): network 0, host 0, so it can
    never be a host's (``infra_address``) nor a machine's."""
    _check_number("edge", edge)
    return SixpnAddress(INFRA_NETWORK, 0, edge).address


def org_prefix(network: int) -> ipaddress.IPv6Network:
    """The /48 holding every address of the organization with 6PN ``network``."""
    _check_number("network", network)
    return ipaddress.IPv6Network(((0xFDAA << 112) | (network << 80), ORG_PREFIXLEN))


def host_prefix(network: int, host: int) -> ipaddress.IPv6Network:
    """The /80 of one organization's machines on one host."""
    _check_number("host", host)
    base = org_prefix(network).network_address
    return ipaddress.IPv6Network((int(base) | (host << 48), HOST_PREFIXLEN))


def parse(address: str | ipaddress.IPv6Address) -> SixpnAddress:
    """The numbers of a 6PN address; ``ValidationError`` names what is wrong.

    Accepts any address inside a machine's or a host's /112 (not only ``:2``),
    so a packet's source can be attributed to its machine.
    """
    try:
        ip = ipaddress.IPv6Address(address) if isinstance(address, str) else address
    except ValueError:
        raise ValidationError(
            f"{address!r} is not an IPv6 address; 6PN addresses look like fdaa:0:1:0:2:0:3:2"
        ) from None
    if ip not in SIXPN:
        raise ValidationError(f"{ip} is not a 6PN address: 6PN addresses are in {SIXPN}")
    value = int(ip)
    network = (value >> 80) & MAX_NUMBER
    host = (value >> 48) & MAX_NUMBER
    machine = (value >> 16) & MAX_NUMBER
    return SixpnAddress(network, host, machine)


def lowest_free(used: Iterable[int], highest: int = MAX_NUMBER) -> int:
    """The lowest number ≥ 1 not in ``used`` (up to ``highest``); ``ValidationError``
    when all are taken."""
    taken = set(used)
    number = 1
    while number in taken:
        number += 1
    if number > highest:
        raise ValidationError("every 6PN number is taken: free some before adding more")
    return number


def _check_number(name: str, value: int, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_NUMBER:
        raise ValidationError(f"6PN {name} number {value} is out of range {low}..{MAX_NUMBER}")
