"""Developers' WireGuard peers of an organization (``ferry wireguard``, Fly's
``fly wireguard create|list|remove``).

A member with write rights adds a peer by name, region and PUBLIC key (the
CLI makes the key pair on the developer's machine; the private key never
reaches Ferry). The peer gets a /120 in its organization's 6PN
(``ferry.net.peer_gateway.peer_prefix``) and the region's gateway — the
region's edge as the mesh registry knows it (``edge-<region>``): its public
key, and its address on the port after its mesh port. Refusals change
nothing: a name or key that exists (409), a region without a gateway (404),
a bad key or name (400), an organization the caller may not see (404).

The edges read their region's peers (``for_gateway``) to configure their
peer interface (``ferry.net.peer_gateway.PeerGateway``); the DNS feed reads
the peers for ``<peer>._peer.internal`` (``ferry.server.internal_feed``).
"""

from __future__ import annotations

import re

from ferry.errors import NotFoundError, ValidationError
from ferry.model.mesh import MeshNodeKind, edge_node_id
from ferry.model.wireguard import NewWireGuardPeer, WireGuardPeer
from ferry.net import peer_gateway, sixpn
from ferry.net.mesh import public_key_error
from ferry.server.authz import Access, Principal, require_org
from ferry.server.clock import Clock
from ferry.server.watch import ChangeNotifier
from ferry.store.base import StateStore
from ferry.store.mesh_base import MeshNodeRecord
from ferry.store.wireguard_base import WireGuardPeerRecord

__all__ = ["WireGuardService"]

# A DNS label (the peer is ``<name>._peer.internal``), as Fly's peer names.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class WireGuardService:
    """Peers of organizations. Methods block (store calls)."""

    def __init__(self, store: StateStore, clock: Clock, notifier: ChangeNotifier) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier

    def create(self, p: Principal, org_slug: str, body: NewWireGuardPeer) -> WireGuardPeer:
        """Add a peer; see the module doc for what is refused."""
        self._require(p, org_slug, Access.WRITE)
        name = body.name.strip()
        if not _NAME.match(name):
            raise ValidationError(
                f"peer name {name!r} is not a DNS label",
                hint="use 1-63 lower-case letters, digits and '-' (it becomes "
                "<name>._peer.internal)",
            )
        if problem := public_key_error(body.public_key):
            raise ValidationError(
                f"public_key: {problem}",
                hint="send the peer's public key (`wg pubkey`), never its private key",
            )
        gateways = self._gateways()
        region = body.region or next(iter(sorted(gateways)), None)
        gateway = gateways.get(region or "")
        if region is None or gateway is None:
            where = f"region {region!r} has" if region else "no region has"
            raise NotFoundError(
                f"{where} no WireGuard gateway: its edge has not joined the mesh",
                hint="pick a region with an edge"
                + (f": {', '.join(sorted(gateways))}" if gateways else " (none is up yet)"),
            )
        if any(node.public_key == body.public_key for node in self._store.list_mesh_nodes()):
            raise ValidationError(
                "public_key is a mesh node's key, not a new peer's",
                hint="make a new key pair for the peer",
            )
        record = self._store.add_wireguard_peer(
            org_slug, name, region=region, public_key=body.public_key, now=self._clock.now()
        )
        self._notifier.notify(None)  # hosts long-polling the mesh route the new /120
        return self._shown(record, gateway)

    def list_peers(self, p: Principal, org_slug: str) -> list[WireGuardPeer]:
        """The organization's peers, by name."""
        self._require(p, org_slug, Access.READ)
        gateways = self._gateways()
        return [
            self._shown(r, gateways.get(r.region))
            for r in self._store.list_wireguard_peers(org_slug)
        ]

    def remove(self, p: Principal, org_slug: str, name: str) -> WireGuardPeer:
        """Remove a peer (404 when the organization has none of that name)."""
        self._require(p, org_slug, Access.WRITE)
        record = self._store.remove_wireguard_peer(org_slug, name)
        self._notifier.notify(None)
        return self._shown(record, self._gateways().get(record.region))

    def for_gateway(self, region: str) -> list[WireGuardPeer]:
        """(The region's edge) every peer that dials ``region``'s gateway, all orgs."""
        gateway = self._gateways().get(region)
        return [self._shown(r, gateway) for r in self._store.list_wireguard_peers(region=region)]

    def _require(self, p: Principal, org_slug: str, wanted: Access) -> None:
        require_org(p, org_slug, wanted)
        if not self._store.list_orgs([org_slug]):  # the operator passes every check
            raise NotFoundError(
                f"organization {org_slug!r} not found", hint="see `ferry orgs list`"
            )

    def _gateways(self) -> dict[str, MeshNodeRecord]:
        return {
            node.region: node
            for node in self._store.list_mesh_nodes()
            if node.kind is MeshNodeKind.EDGE and node.id == edge_node_id(node.region)
        }

    def _shown(self, record: WireGuardPeerRecord, gateway: MeshNodeRecord | None) -> WireGuardPeer:
        network = org_network(self._store, record.org_slug)
        return WireGuardPeer(
            name=record.name,
            org_slug=record.org_slug,
            region=record.region,
            public_key=record.public_key,
            address=str(peer_gateway.peer_address(network, record.number)),
            prefix=str(peer_gateway.peer_prefix(network, record.number)),
            org_prefix=str(sixpn.org_prefix(network)),
            dns=str(peer_gateway.org_resolver(network)),
            gateway_public_key=gateway.public_key if gateway else "",
            gateway_endpoint=peer_gateway.gateway_endpoint(gateway.endpoint) if gateway else "",
            created_at=record.created_at,
        )


def org_network(store: StateStore, org_slug: str) -> int:
    """The organization's 6PN network number (``NotFoundError`` for an unknown org)."""
    return store.get_org(org_slug).sixpn_network
