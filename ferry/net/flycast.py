"""Flycast addresses: an app's private IPv6 address that goes through the edge proxy.

Layout (Ferry's choice; Fly's own numbering is not public). Flycast address
number ``K`` (≥ 1) of the organization with 6PN network ``N`` is ::

    fdaa : NNNN:NNNN : ffff:ffff : 0000:KKKK:KKKK          (a /128)
           network     host 0xffffffff (FLYCAST_HOST)

i.e. number ``K`` of the /80 ``host_prefix(N, FLYCAST_HOST)`` (``flycast_prefix``).
Host numbers of real hosts stop below ``FLYCAST_HOST`` (``sixpn.MAX_HOST``) and
host 0 holds developers' WireGuard peers and the organization's resolver
(``ferry.net.peer_gateway``), so a Flycast address is never a machine's or a
peer's, and ``sixpn.parse`` still reads the organization off it: the hosts'
firewalls admit a machine to its own organization's Flycast addresses with
the same-organization rule they already have, and drop every other
organization's.

The region's edge owns every Flycast address (AnyIP, ``ip -6 route add local
ADDR/128 dev lo``); hosts route each organization's Flycast /80 over the mesh
to their region's edge (``MeshSnapshot.flycast``). ``FlycastTable`` is what
an edge serves: address → ``FlycastEntry`` (app, network), and ``admits``
says whether a client address may use an entry (its organization's only).
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ferry.errors import ValidationError
from ferry.net import sixpn

__all__ = [
    "FLYCAST_HOST",
    "FlycastEntry",
    "FlycastTable",
    "flycast_address",
    "flycast_number",
    "flycast_prefix",
    "is_flycast",
    "network_of_client",
]

FLYCAST_HOST = sixpn.MAX_NUMBER
"""The 6PN host number of every Flycast address: never a real host's (``sixpn.MAX_HOST``)."""
MAX_FLYCAST = (1 << 48) - 1
"""Flycast numbers fill the 48 low bits of the /80."""


def flycast_prefix(network: int) -> ipaddress.IPv6Network:
    """The /80 holding every Flycast address of the organization with 6PN ``network``."""
    return sixpn.host_prefix(network, FLYCAST_HOST)


def flycast_address(network: int, number: int) -> ipaddress.IPv6Address:
    """Flycast address ``number`` (1 … 2⁴⁸-1) of ``network``; ``ValidationError`` out of range."""
    if not 1 <= number <= MAX_FLYCAST:
        raise ValidationError(f"Flycast number {number} is out of range 1..{MAX_FLYCAST}")
    return flycast_prefix(network)[number]


def is_flycast(address: str | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is a Flycast address of some organization (never raises)."""
    try:
        parsed = sixpn.parse(address)
    except ValidationError:
        return False
    return parsed.host == FLYCAST_HOST and parsed.network != sixpn.INFRA_NETWORK


def flycast_number(address: str | ipaddress.IPv6Address) -> tuple[int, int]:
    """``(network, number)`` of a Flycast address; ``ValidationError`` names what is wrong."""
    ip = ipaddress.IPv6Address(address) if isinstance(address, str) else address
    if not is_flycast(ip):
        raise ValidationError(
            f"{ip} is not a Flycast address",
            hint="Flycast addresses look like fdaa:0:1:ffff:ffff::1 (`ferry ips list`)",
        )
    number = int(ip) & MAX_FLYCAST
    if number == 0:
        raise ValidationError(f"{ip} is the Flycast prefix itself, not an address")
    return sixpn.parse(ip).network, number


def network_of_client(address: str) -> int | None:
    """The organization's 6PN network of a client address (a machine, a WireGuard peer),
    or None when it is no organization's (IPv4, network 0, not 6PN). Never raises."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not isinstance(ip, ipaddress.IPv6Address):
            return None
        network = sixpn.parse(ip).network
    except (ValueError, ValidationError):
        return None
    return None if network == sixpn.INFRA_NETWORK else network


@dataclass(frozen=True)
class FlycastEntry:
    """One Flycast address as the edge serves it."""

    address: ipaddress.IPv6Address
    app: str
    network: int

    def __post_init__(self) -> None:
        owner, _ = flycast_number(self.address)
        if owner != self.network:
            raise ValidationError(f"{self.address} is not in 6PN network {self.network}")
        if not self.app:
            raise ValidationError(f"Flycast address {self.address} names no app")


@dataclass(frozen=True)
class FlycastTable:
    """Every Flycast address an edge serves, at the control plane's ``version``."""

    version: int = 0
    entries: Mapping[ipaddress.IPv6Address, FlycastEntry] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def of(cls, version: int, entries: Iterable[FlycastEntry]) -> FlycastTable:
        return cls(version, MappingProxyType({e.address: e for e in entries}))

    def lookup(self, local_address: str) -> FlycastEntry | None:
        """The entry dialled at ``local_address`` (a socket's own address), if any."""
        try:
            ip = ipaddress.IPv6Address(local_address.split("%", 1)[0])
        except ValueError:
            return None
        return self.entries.get(ip)

    def admits(self, entry: FlycastEntry, client_address: str) -> bool:
        """Only the address's own organization may use it: the client's 6PN network
        (read off its address) must be the entry's."""
        return network_of_client(client_address) == entry.network

    @property
    def apps(self) -> frozenset[str]:
        return frozenset(e.app for e in self.entries.values())
