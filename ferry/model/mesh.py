"""The WireGuard mesh as the control plane knows it: who is on it, with which key.

Hosts and edges make their own key pairs and announce only the public half
and the UDP endpoint other nodes reach them at (``MeshAnnouncement``); the
control plane gives every node the list of the others (``MeshSnapshot``) with
the 6PN prefixes each one carries (``allowed_ips``). Private keys never leave
the node that made them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["MeshAnnouncement", "MeshNode", "MeshNodeKind", "MeshSnapshot", "edge_node_id"]


class MeshNodeKind(StrEnum):
    HOST = "host"  # carries its machines' /112s
    EDGE = "edge"  # a region's edge proxy: reaches machines, carries only itself


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class MeshAnnouncement(_Frozen):
    """What a node tells the control plane about itself (``PUT …/mesh``)."""

    public_key: str
    endpoint: str

    # Checked by ``ferry.server.mesh_service`` with the mesh's own rules (``ferry.net.mesh``).


class MeshNode(_Frozen):
    """One node of the mesh, as every other node sees it."""

    id: str  # the host's id, or ``edge-<region>``
    kind: MeshNodeKind
    region: str
    public_key: str
    endpoint: str
    address: str  # the node's own 6PN address (network 0)
    allowed_ips: list[str]  # CIDRs the node carries: its address, its machines' /112s
    updated_at: datetime


class MeshSnapshot(_Frozen):
    """Every node, and the version to long-poll from (``GET /v1/mesh?since=``).

    ``flycast``: the Flycast /80 of every organization with a Flycast address
    (``ferry.net.flycast``). Every region's edge serves them all, so they are no
    one node's: each host routes them to its own region's edge (``peers_of``)."""

    version: int
    nodes: list[MeshNode]
    flycast: list[str] = []


def edge_node_id(region: str) -> str:
    """The mesh node id of ``region``'s edge."""
    return f"edge-{region}"
