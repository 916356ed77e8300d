"""The host's copy of what ``.internal`` DNS answers from. Pure: no I/O.

``InternalRecords`` holds, for every organization (keyed by its 6PN network
number, as read off an asker's address by ``sixpn.parse``):

- its machines (``MachineRecord``: id, app, region, process group, 6PN address,
  started or not, metadata);
- its apps, including apps without machines (``_apps.internal``);
- its WireGuard peers, name → address (``<peer>._peer.internal``);
- its apps' Flycast addresses, app → addresses (``<app>.flycast``);

and, for the whole host, the region round-trip times used to rank machines for
``top<N>.nearest.of.<app>.internal`` (``RegionDistances``, as the autoscaler
uses; ``from_latency`` takes the cluster's ``LatencyMatrix`` figures).

``to_json``/``from_json`` round-trip it exactly, so a host keeps a copy on disk
and answers from it while the control plane is down. ``from_json`` raises
``ValidationError`` naming the first bad field; nothing partial is returned.

Instances are immutable and indexed once at construction: the DNS server swaps
a whole new ``InternalRecords`` in (``InternalDnsServer.update``) rather than
mutating one, so a query never sees half an update.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ferry.autoscale.distances import RegionDistances
from ferry.errors import ValidationError
from ferry.net import sixpn

__all__ = ["FORMAT_VERSION", "InternalRecords", "MachineRecord"]

FORMAT_VERSION = 1
"""Bumped when the JSON layout changes; ``from_json`` refuses other versions."""


@dataclass(frozen=True)
class MachineRecord:
    """One machine as DNS sees it. ``network`` is its organization's 6PN number."""

    id: str
    app: str
    network: int
    region: str
    process_group: str
    address: ipaddress.IPv6Address
    started: bool
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not self.app or not self.region:
            raise ValidationError(f"machine {self.id!r}: id, app and region must not be empty")
        owner = sixpn.parse(self.address).network
        if owner != self.network or owner == sixpn.INFRA_NETWORK:
            raise ValidationError(
                f"machine {self.id}: address {self.address} is not in 6PN network {self.network}"
            )
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "app": self.app,
            "network": self.network,
            "region": self.region,
            "process_group": self.process_group,
            "address": str(self.address),
            "started": self.started,
            "metadata": dict(sorted(self.metadata.items())),
        }

    @classmethod
    def from_dict(cls, data: Any) -> MachineRecord:
        """Raises ``ValidationError`` naming the bad field."""
        if not isinstance(data, dict):
            raise ValidationError(f"a machine record must be an object, got {data!r}")
        metadata = data.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValidationError(f"machine {data.get('id')!r}: metadata must map text to text")
        return cls(
            id=_text(data, "id"),
            app=_text(data, "app"),
            network=_number(data, "network"),
            region=_text(data, "region"),
            process_group=_text(data, "process_group"),
            address=_address(data.get("address"), f"machine {data.get('id')!r} address"),
            started=_flag(data, "started"),
            metadata=metadata,
        )


class InternalRecords:
    """Every organization's names on this host, indexed for lookups (immutable)."""

    def __init__(
        self,
        machines: Iterable[MachineRecord] = (),
        apps: Mapping[int, Iterable[str]] | None = None,
        peers: Mapping[int, Mapping[str, ipaddress.IPv6Address]] | None = None,
        distances: RegionDistances | None = None,
        flycast: Mapping[int, Mapping[str, Iterable[ipaddress.IPv6Address]]] | None = None,
    ) -> None:
        """Apps of machines are added to ``apps`` if missing. Peer and Flycast addresses
        must be in their organization's network (``ValidationError`` otherwise)."""
        self.machines: tuple[MachineRecord, ...] = tuple(
            sorted(machines, key=lambda m: (m.network, m.app, m.id))
        )
        self.distances = distances or RegionDistances()
        app_sets: dict[int, set[str]] = {n: set(names) for n, names in (apps or {}).items()}
        by_app: dict[tuple[int, str], list[MachineRecord]] = {}
        for machine in self.machines:
            app_sets.setdefault(machine.network, set()).add(machine.app)
            by_app.setdefault((machine.network, machine.app.lower()), []).append(machine)
        self.apps: Mapping[int, tuple[str, ...]] = MappingProxyType(
            {n: tuple(sorted(names)) for n, names in sorted(app_sets.items())}
        )
        self._app_names = {(n, a.lower()) for n, names in app_sets.items() for a in names}
        self._by_app = {key: tuple(found) for key, found in by_app.items()}
        clean_peers: dict[int, Mapping[str, ipaddress.IPv6Address]] = {}
        for network, named in sorted((peers or {}).items()):
            for name, address in named.items():
                if sixpn.parse(address).network != network or network == sixpn.INFRA_NETWORK:
                    raise ValidationError(f"peer {name}: {address} is not in network {network}")
            clean_peers[network] = MappingProxyType(dict(sorted(named.items())))
        self.peers: Mapping[int, Mapping[str, ipaddress.IPv6Address]] = MappingProxyType(
            clean_peers
        )
        self._peers_lower = {
            (n, name.lower()): address
            for n, named in clean_peers.items()
            for name, address in named.items()
        }
        clean_flycast: dict[int, Mapping[str, tuple[ipaddress.IPv6Address, ...]]] = {}
        for network, of_apps in sorted((flycast or {}).items()):
            kept: dict[str, tuple[ipaddress.IPv6Address, ...]] = {}
            for app, given in sorted(of_apps.items()):
                addrs = tuple(sorted(given))
                for fc_address in addrs:
                    if sixpn.parse(fc_address).network != network or network == sixpn.INFRA_NETWORK:
                        raise ValidationError(
                            f"{app}.flycast: {fc_address} is not in network {network}"
                        )
                if addrs:
                    kept[app] = addrs
            if kept:
                clean_flycast[network] = MappingProxyType(kept)
        self.flycast: Mapping[int, Mapping[str, tuple[ipaddress.IPv6Address, ...]]] = (
            MappingProxyType(clean_flycast)
        )
        self._flycast_lower = {
            (n, app.lower()): addrs
            for n, of_apps in clean_flycast.items()
            for app, addrs in of_apps.items()
        }
        self.regions = frozenset(
            {m.region for m in self.machines} | {r for pair in self.distances.rtt for r in pair}
        )

    @classmethod
    def from_latency(
        cls, rtt_ms: Mapping[tuple[str, str], float], **kwargs: Any
    ) -> InternalRecords:
        """Records ranked by ``rtt_ms`` (e.g. ``LatencyMatrix.median``)."""
        return cls(distances=RegionDistances.from_pairs(rtt_ms), **kwargs)

    def has_app(self, network: int, app: str) -> bool:
        """Whether ``app`` (any case) belongs to the organization with 6PN ``network``."""
        return (network, app.lower()) in self._app_names

    def machines_of(self, network: int, app: str) -> tuple[MachineRecord, ...]:
        """Every machine (started or not) of ``app`` in ``network``; () if none or not its."""
        return self._by_app.get((network, app.lower()), ())

    def peer(self, network: int, name: str) -> ipaddress.IPv6Address | None:
        """The address of the organization's WireGuard peer ``name`` (any case)."""
        return self._peers_lower.get((network, name.lower()))

    def flycast_of(self, network: int, app: str) -> tuple[ipaddress.IPv6Address, ...]:
        """The Flycast addresses of the organization's app ``app`` (any case); () if none."""
        return self._flycast_lower.get((network, app.lower()), ())

    def to_json(self) -> str:
        """The whole copy as JSON text; ``from_json`` reads it back equal."""
        document = {
            "version": FORMAT_VERSION,
            "machines": [m.to_dict() for m in self.machines],
            "apps": {str(n): list(names) for n, names in self.apps.items()},
            "peers": {
                str(n): {name: str(a) for name, a in named.items()}
                for n, named in self.peers.items()
            },
            "rtt_ms": {f"{a}-{b}": ms for (a, b), ms in sorted(self.distances.rtt.items())},
            "flycast": {
                str(n): {app: [str(a) for a in found] for app, found in by_app.items()}
                for n, by_app in self.flycast.items()
            },
        }
        return json.dumps(document, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> InternalRecords:
        """Parse ``to_json``'s output; ``ValidationError`` names what is wrong."""
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"the DNS records copy is not JSON: {exc}") from None
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValidationError(
                f"the DNS records copy must be an object with version {FORMAT_VERSION}",
                hint="delete it; the agent writes a fresh one from the control plane",
            )
        raw_machines = document.get("machines", [])
        if not isinstance(raw_machines, list):
            raise ValidationError("'machines' must be a list")
        machines = [MachineRecord.from_dict(item) for item in raw_machines]
        apps: dict[int, list[str]] = {}
        for key, names in _object(document, "apps").items():
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ValidationError(f"apps of network {key} must be a list of names")
            apps[_network_key(key)] = names
        peers: dict[int, dict[str, ipaddress.IPv6Address]] = {}
        for key, named in _object(document, "peers").items():
            if not isinstance(named, dict):
                raise ValidationError(f"peers of network {key} must map names to addresses")
            peers[_network_key(key)] = {
                str(name): _address(address, f"peer {name!r} address")
                for name, address in named.items()
            }
        flycast: dict[int, dict[str, list[ipaddress.IPv6Address]]] = {}
        for key, by_app in _object(document, "flycast").items():
            if not isinstance(by_app, dict) or not all(
                isinstance(found, list) for found in by_app.values()
            ):
                raise ValidationError(f"flycast of network {key} must map apps to address lists")
            flycast[_network_key(key)] = {
                str(app): [_address(a, f"{app}.flycast address") for a in found]
                for app, found in by_app.items()
            }
        try:
            distances = RegionDistances.from_pairs(_object(document, "rtt_ms"))
        except ValueError as exc:
            raise ValidationError(f"rtt_ms: {exc}") from None
        return cls(machines, apps=apps, peers=peers, distances=distances, flycast=flycast)


def _object(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise ValidationError(f"{key!r} must be an object")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValidationError(f"machine {data.get('id')!r}: {key} must be text, got {value!r}")
    return value


def _number(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"machine {data.get('id')!r}: {key} must be a number")
    return value


def _flag(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ValidationError(f"machine {data.get('id')!r}: {key} must be true or false")
    return value


def _network_key(key: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise ValidationError(f"network key {key!r} must be a 6PN network number") from None


def _address(value: Any, what: str) -> ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be an IPv6 address as text, got {value!r}")
    try:
        return ipaddress.IPv6Address(value)
    except ValueError:
        raise ValidationError(f"{what} {value!r} is not an IPv6 address") from None
