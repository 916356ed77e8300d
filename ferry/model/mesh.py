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

__all__ = [
    "EdgeFastPlan",
    "FastForward",
    "MeshAnnouncement",
    "MeshNode",
    "MeshNodeKind",
    "MeshSnapshot",
    "edge_node_id",
]


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


class FastForward(_Frozen):
    """One raw TCP Flycast port a region's edge forwards in its kernel
    (``ferry.net.flycast_fast``): connections to ``address``:``port`` from
    ``organization`` (its /48) go to one of ``targets`` (6PN addresses) on
    ``target_port``. Checked by ``ferry.server.mesh_service`` when published."""

    address: str
    port: int
    organization: str
    targets: list[str]
    target_port: int
    app: str


class EdgeFastPlan(_Frozen):
    """What a region's edge forwards in its kernel now (``PUT /v1/edges/{region}/flycast-fast``).

    Hosts of the region whose own machines are *all* the targets of a port
    forward their machines' connections to it themselves
    (``ferry.net.flycast_host``): the same choice, without the trip to the edge."""

    region: str = ""  # set by the control plane from the path
    ports: list[FastForward] = []


class MeshSnapshot(_Frozen):
    """Every node, and the version to long-poll from (``GET /v1/mesh?since=``).

    ``flycast``: the Flycast /80 of every organization with a Flycast address
    (``ferry.net.flycast``). Every region's edge serves them all, so they are no
    one node's: each host routes them to its own region's edge (``peers_of``)."""

    version: int
    nodes: list[MeshNode]
    flycast: list[str] = []
    fast: list[EdgeFastPlan] = []
    """Each region edge's kernel path as it last published it (kept in memory by the
    control plane: empty after its restart until the edges publish again)."""


def edge_node_id(region: str) -> str:
    """The mesh node id of ``region``'s edge."""
    return f"edge-{region}"
