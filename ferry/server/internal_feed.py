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

from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv6Address

from ferry.autoscale.distances import RegionDistances
from ferry.errors import ValidationError
from ferry.model import MachineState
from ferry.net.internal_records import InternalRecords, MachineRecord
from ferry.store.base import StateStore

__all__ = ["PeersOf", "internal_records", "records_of"]

DEFAULT_GROUP = "app"  # a machine without fly_process_group metadata, as deploys name it

#: The WireGuard peers (name → address) of the organization with this 6PN network.
PeersOf = Callable[[Iterable[int]], Mapping[int, Mapping[str, IPv6Address]]]


def internal_records(
    store: StateStore,
    distances: RegionDistances,
    host_id: str,
    peers_of: PeersOf | None = None,
) -> InternalRecords:
    """The records ``host_id``'s resolver needs (see the module doc). Blocking."""
    return records_of(store, distances, None, peers_of, on_host=host_id)


def records_of(
    store: StateStore,
    distances: RegionDistances,
    networks: set[int] | None,
    peers_of: PeersOf | None = None,
    *,
    on_host: str | None = None,
) -> InternalRecords:
    """The records of the organizations with 6PN ``networks`` (those of a gateway's
    WireGuard peers), or, with ``networks=None``, of those with a live machine on
    ``on_host``. Reads the apps and machines once. Blocking."""
    apps = {app.name: app for app in store.list_apps()}
    live = store.list_machines(include_destroyed=False)
    if networks is None:
        networks = {
            apps[m.app_name].organization.sixpn_network
            for m in live
            if m.host_id == on_host and m.app_name in apps
        }
    networks = set(networks) - {0}
    records: list[MachineRecord] = []
    for m in live:
        app = apps.get(m.app_name)
        if app is None or app.organization.sixpn_network not in networks:
            continue
        try:
            records.append(
                MachineRecord(
                    id=m.id,
                    app=m.app_name,
                    network=app.organization.sixpn_network,
                    region=m.region,
                    process_group=m.config.metadata.get("fly_process_group") or DEFAULT_GROUP,
                    address=IPv6Address(m.private_ip),
                    started=m.state is MachineState.STARTED,
                    metadata=dict(m.config.metadata),
                )
            )
        except (ValueError, ValidationError):
            continue  # no 6PN address (a machine from before 6PN): nothing to answer
    by_network: dict[int, list[str]] = {n: [] for n in networks}
    for app in apps.values():
        if app.organization.sixpn_network in by_network:
            by_network[app.organization.sixpn_network].append(app.name)
    peers = dict(peers_of(sorted(networks))) if peers_of is not None else {}
    flycast: dict[int, dict[str, list[IPv6Address]]] = {}
    for ip in store.list_flycast_ips():
        app = apps.get(ip.app_name)
        # Served while the app is in the network the address was made in (see flycast_service).
        if (
            ip.network in networks
            and app is not None
            and app.organization.sixpn_network == ip.network
        ):
            flycast.setdefault(ip.network, {}).setdefault(ip.app_name, []).append(
                IPv6Address(ip.address)
            )
    return InternalRecords(records, by_network, peers, distances, flycast)
