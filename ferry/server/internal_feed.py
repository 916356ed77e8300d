"""What a host's ``.internal`` DNS answers from: the control plane's side.

A host serves machines of some organizations; its resolver answers each
machine about its own organization only. So the feed for a host holds every
organization with a live machine on that host — all of that organization's
machines (in every region: ``<app>.internal`` spans them), apps, WireGuard
peers and Flycast addresses (``<app>.flycast``) — and the region round-trip
times for ``top<N>.nearest.of``.
Nothing of an organization without machines on the host goes there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from ferry.autoscale.distances import RegionDistances
from ferry.errors import ValidationError
from ferry.model import Machine, MachineState
from ferry.net import peer_gateway
from ferry.net.internal_records import InternalRecords, MachineRecord
from ferry.store.base import StateStore

__all__ = ["FeedReads", "RecordsView", "internal_records", "read_feed"]

DEFAULT_GROUP = "app"  # a machine without fly_process_group metadata, as deploys name it


@dataclass(frozen=True)
class FeedReads:
    """Everything the hosts' and gateways' records are made of, read and indexed once
    per store version and shared by them all (``ferry.server.feeds``)."""

    records: Mapping[int, tuple[MachineRecord, ...]]  # network → its live machines
    apps: Mapping[int, tuple[str, ...]]  # network → its apps' names
    peers: Mapping[int, Mapping[str, IPv6Address]]  # network → peer name → address
    host_networks: Mapping[str, frozenset[int]]  # host → networks with machines there
    gateway_networks: Mapping[str, frozenset[int]]  # region → networks with peers there
    #: network → app → its Flycast addresses (those still in the app's organization)
    flycast: Mapping[int, Mapping[str, tuple[IPv6Address, ...]]] = field(default_factory=dict)

    def fingerprint(self, networks: frozenset[int]) -> object:
        """Equal for two reads whose records of ``networks`` are the same."""
        return tuple(
            (
                n,
                self.records.get(n, ()),
                self.apps.get(n, ()),
                dict(self.peers.get(n, {})),
                dict(self.flycast.get(n, {})),
            )
            for n in sorted(networks)
        )

    def records_of(self, networks: frozenset[int], distances: RegionDistances) -> InternalRecords:
        """The records of the organizations with 6PN ``networks``."""
        machines = [m for n in sorted(networks) for m in self.records.get(n, ())]
        apps = {n: self.apps.get(n, ()) for n in networks}
        peers = {n: self.peers[n] for n in networks if n in self.peers}
        flycast = {n: self.flycast[n] for n in networks if n in self.flycast}
        return InternalRecords(machines, apps, peers, distances, flycast)


@dataclass(frozen=True)
class RecordsView:
    """The records of some networks in one ``FeedReads``: what one host's or one
    gateway's feed holds, compared by ``fingerprint`` and encoded only when sent."""

    reads: FeedReads
    networks: frozenset[int]

    def fingerprint(self) -> object:
        return self.reads.fingerprint(self.networks)

    def to_json(self, distances: RegionDistances) -> str:
        return self.reads.records_of(self.networks, distances).to_json()


def read_feed(store: StateStore) -> FeedReads:
    """Read apps, live machines and WireGuard peers once, and index them. Blocking."""
    apps = {app.name: app for app in store.list_apps()}
    network_of = {o.slug: o.sixpn_network for o in store.list_orgs()}
    records: dict[int, list[MachineRecord]] = {}
    hosts: dict[str, set[int]] = {}
    for m in store.list_machines(include_destroyed=False):
        app = apps.get(m.app_name)
        if app is None or not app.organization.sixpn_network:
            continue
        network = app.organization.sixpn_network
        hosts.setdefault(m.host_id, set()).add(network)
        record = _record(m, network)
        if record is not None:
            records.setdefault(network, []).append(record)
    names: dict[int, list[str]] = {}
    for app in apps.values():
        names.setdefault(app.organization.sixpn_network, []).append(app.name)
    peers: dict[int, dict[str, IPv6Address]] = {}
    gateways: dict[str, set[int]] = {}
    for peer in store.list_wireguard_peers():
        peer_network = network_of.get(peer.org_slug)
        if not peer_network:
            continue
        address = peer_gateway.peer_address(peer_network, peer.number)
        peers.setdefault(peer_network, {})[peer.name] = address
        gateways.setdefault(peer.region, set()).add(peer_network)
    flycast: dict[int, dict[str, list[IPv6Address]]] = {}
    for ip in store.list_flycast_ips():
        owner = apps.get(ip.app_name)
        # Served while the app is in the network the address was made in (flycast_service).
        if owner is not None and owner.organization.sixpn_network == ip.network:
            flycast.setdefault(ip.network, {}).setdefault(ip.app_name, []).append(
                IPv6Address(ip.address)
            )
    return FeedReads(
        records={n: tuple(sorted(r, key=lambda m: (m.app, m.id))) for n, r in records.items()},
        apps={n: tuple(sorted(a)) for n, a in names.items()},
        peers=peers,
        host_networks={h: frozenset(n) for h, n in hosts.items()},
        gateway_networks={r: frozenset(n) for r, n in gateways.items()},
        flycast={
            n: {a: tuple(sorted(found)) for a, found in by_app.items()}
            for n, by_app in flycast.items()
        },
    )


def internal_records(
    store: StateStore, distances: RegionDistances, host_id: str
) -> InternalRecords:
    """The records ``host_id``'s resolver needs (see the module doc). Blocking."""
    reads = read_feed(store)
    return reads.records_of(reads.host_networks.get(host_id, frozenset()), distances)


def _record(m: Machine, network: int) -> MachineRecord | None:
    try:
        return MachineRecord(
            id=m.id,
            app=m.app_name,
            network=network,
            region=m.region,
            process_group=m.config.metadata.get("fly_process_group") or DEFAULT_GROUP,
            address=IPv6Address(m.private_ip),
            started=m.state is MachineState.STARTED,
            metadata=dict(m.config.metadata),
        )
    except (ValueError, ValidationError):
        return None  # no 6PN address (a machine from before 6PN): nothing to answer
