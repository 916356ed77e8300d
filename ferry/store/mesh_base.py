"""The mesh part of the storage contract (``ferry.store.sqlite_mesh`` for SQLite).

One row per node of the WireGuard mesh (a host or an edge): its public key,
its endpoint and a mesh number. An edge's address is ``sixpn.edge_address`` of
that number; a host's is ``sixpn.infra_address`` of its 6PN host number, so its
mesh number only keeps the column unique. A node announcing again keeps its
number; keys and endpoints are unique across nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ferry.model.mesh import MeshNodeKind

__all__ = ["MeshNodeRecord", "MeshStore"]


@dataclass(frozen=True)
class MeshNodeRecord:
    id: str
    kind: MeshNodeKind
    region: str
    number: int
    public_key: str
    endpoint: str
    updated_at: datetime


class MeshStore(Protocol):
    """Mesh nodes. Every method blocks and is thread-safe."""

    def announce_mesh_node(
        self,
        node_id: str,
        *,
        kind: MeshNodeKind,
        region: str,
        public_key: str,
        endpoint: str,
        now: datetime,
    ) -> MeshNodeRecord:
        """Record (or update) ``node_id``'s key and endpoint; a new node gets the lowest
        free number. ``ConflictError`` naming the other node when its key or endpoint
        is taken; nothing changes then. An unchanged announcement changes nothing."""
        ...

    def list_mesh_nodes(self) -> list[MeshNodeRecord]:
        """Every node, by number."""
        ...

    def mesh_version(self) -> int:
        """A counter that grows with every change of the node list."""
        ...
