"""The WireGuard peer part of the storage contract (``ferry.store.sqlite_wireguard``).

One row per developer peer: its organization, name (unique in the
organization), region (whose gateway it dials), public key (unique across
every peer) and number (unique in the organization: the ``machine`` field of
its 6PN address, see ``ferry.net.peer_gateway.peer_prefix``). Adding or
removing a peer bumps the mesh counter (``MeshStore.mesh_version``), since
hosts route a peer's /120 to its region's edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["WireGuardPeerRecord", "WireGuardPeerStore"]


@dataclass(frozen=True)
class WireGuardPeerRecord:
    org_slug: str
    name: str
    region: str
    number: int
    public_key: str
    created_at: datetime


class WireGuardPeerStore(Protocol):
    """WireGuard peers. Every method blocks and is thread-safe."""

    def add_wireguard_peer(
        self, org_slug: str, name: str, *, region: str, public_key: str, now: datetime
    ) -> WireGuardPeerRecord:
        """Add a peer with the lowest number free in its organization. ``ConflictError``
        when the organization has a peer of that name, or any peer has that key;
        nothing changes then."""
        ...

    def list_wireguard_peers(
        self, org_slug: str | None = None, region: str | None = None
    ) -> list[WireGuardPeerRecord]:
        """Peers (of one organization, of one region's gateway, or all) by org, name."""
        ...

    def remove_wireguard_peer(self, org_slug: str, name: str) -> WireGuardPeerRecord:
        """Remove and return the peer; ``NotFoundError`` when the org has no such peer."""
        ...
