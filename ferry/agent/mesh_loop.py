"""The mesh loop: keep a node's place in the WireGuard mesh (hosts' agents, edges).

Level-triggered, in its own thread: announce the host's public key and
endpoint to the control plane (again whenever the control plane forgets it),
then follow the node list (``GET /v1/mesh``, long poll) and hand every
snapshot to ``HostMesh.sync``, which starts wireguard-go if it is not
running and makes the interface's peers and routes match. Before that, when
given one, a ``FlycastPath`` moves Flycast onto the LAN for a host on its
region edge's LAN (``ferry.net.flycast_lan``); the edge's /80s then leave the
WireGuard peer's allowed IPs. The last snapshot
is kept in ``mesh.json`` so a host restarted while the control plane is down
rebuilds its peers from it. Private keys never leave ``HostMesh``'s key file.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ferry.agent.flycast_host import HostFastView
from ferry.errors import ConfigError, FerryError
from ferry.model.mesh import MeshNode, MeshNodeKind, MeshSnapshot, edge_node_id
from ferry.net.flycast_lan_sync import FlycastLanReport
from ferry.net.mesh import MeshPeer
from ferry.net.mesh_sync import MeshReport

__all__ = ["Announce", "FlycastPath", "MeshClient", "MeshHost", "MeshLoop", "peers_of"]

log = logging.getLogger("ferry.agent.mesh")

WATCH_SECONDS = 30
RETRY_SECONDS = 1.0
RESYNC_SECONDS = 60.0


class MeshHost(Protocol):
    """What the loop needs of ``ferry.net.mesh_sync.HostMesh``."""

    @property
    def node_id(self) -> str: ...

    @property
    def endpoint(self) -> str | None: ...

    def announce(self, local_prefixes: Sequence[str]) -> MeshPeer: ...

    def sync(self, desired: Sequence[MeshPeer], local_prefixes: Sequence[str]) -> MeshReport: ...


class FlycastPath(Protocol):
    """What the loop needs of ``ferry.net.flycast_lan_sync``'s ``HostFlycastLan`` and
    ``EdgeFlycastLan``: Flycast over the LAN, made to match the snapshot."""

    def sync(
        self, snapshot: MeshSnapshot, serves: Mapping[str, str | None]
    ) -> FlycastLanReport: ...


class MeshClient(Protocol):
    def watch_mesh(self, since: int = 0, timeout: float = 30) -> MeshSnapshot: ...


#: Tell the control plane this node's public key and endpoint; the node as recorded.
Announce = Callable[[str, str], MeshNode]


def peers_of(
    snapshot: MeshSnapshot, node_id: str, flycast_over_mesh: bool = True
) -> list[MeshPeer]:
    """Every other node of ``snapshot`` as a WireGuard peer, in the control plane's order.

    A host also routes the organizations' Flycast /80s (``snapshot.flycast``) to the
    edge that serves them for it (``flycast_edge``): they join that edge's allowed IPs,
    unless the host sends them over its LAN (``flycast_over_mesh`` False).
    """
    edge = flycast_edge(snapshot, node_id) if flycast_over_mesh else None
    return [
        MeshPeer(
            node_id=node.id,
            public_key=node.public_key,
            endpoint=node.endpoint,
            allowed_ips=tuple(node.allowed_ips)
            + (tuple(snapshot.flycast) if node.id == edge else ()),
        )
        for node in snapshot.nodes
        if node.id != node_id
    ]


def flycast_edges(snapshot: MeshSnapshot) -> dict[str, str | None]:
    """Node id → ``flycast_edge`` of every node of ``snapshot``."""
    return {node.id: flycast_edge(snapshot, node.id) for node in snapshot.nodes}


def flycast_edge(snapshot: MeshSnapshot, node_id: str) -> str | None:
    """The edge host ``node_id`` sends Flycast traffic to: its own region's, else the
    first edge of the snapshot (the oldest); None for an edge (it serves Flycast itself),
    a node not in the snapshot, or a mesh without edges."""
    me = next((n for n in snapshot.nodes if n.id == node_id), None)
    if me is None or me.kind is not MeshNodeKind.HOST:
        return None
    edges = [n for n in snapshot.nodes if n.kind is MeshNodeKind.EDGE]
    own = next((n for n in edges if n.id == edge_node_id(me.region)), None)
    chosen = own or next(iter(edges), None)
    return chosen.id if chosen is not None else None


class MeshLoop:
    """``run()`` blocks until ``stopping`` is set; ``sync_once`` is one cycle (tests)."""

    def __init__(
        self,
        client: MeshClient,
        announce: Announce,
        mesh: MeshHost,
        local_prefixes: Callable[[], Sequence[str]],
        stopping: threading.Event,
        cache: Path,
        flycast_lan: FlycastPath | None = None,
        fast_plans: HostFastView | None = None,
    ) -> None:
        self.client = client
        self.announce = announce
        self.mesh = mesh
        self.local_prefixes = local_prefixes
        self.stopping = stopping
        self.cache = cache
        self.flycast_lan = flycast_lan
        self.fast_plans = fast_plans
        self.version = 0
        self._announced = False
        # The nodes (and Flycast prefixes) the interface was synced to.
        self._applied: tuple[list[MeshNode], list[str]] | None = None
        self._synced_at = time.monotonic()

    def run(self) -> None:
        cached = self._load()
        if cached is not None:
            self._sync(cached)  # the peers we had, before the control plane answers
            self._hand_over_plans(cached)
        while not self.stopping.is_set():
            try:
                self.sync_once(WATCH_SECONDS)
            except FerryError as exc:
                log.warning("mesh: %s; keeping the peers we have", exc)
                self._announced = False  # the control plane may have lost us: say it again
                self.stopping.wait(RETRY_SECONDS)

    def sync_once(self, timeout: float = 0) -> MeshSnapshot:
        """Announce if needed, wait up to ``timeout`` for a newer snapshot, apply it."""
        if not self._announced:
            me = self.mesh.announce(self.local_prefixes())
            endpoint = self.mesh.endpoint
            if endpoint is None:
                raise ConfigError(
                    "this host has no mesh endpoint to announce",
                    hint="start the agent with the address other hosts reach it at",
                )
            self.announce(me.public_key, endpoint)
            self._announced = True
        snapshot = self.client.watch_mesh(since=self.version, timeout=timeout)
        # The version moves with every machine write; the peers only with the nodes and
        # their prefixes: no wg or ip exec when a machine merely starts or stops.
        # A sync now and then all the same keeps it level-triggered (a killed wireguard-go).
        stale = time.monotonic() - self._synced_at > RESYNC_SECONDS
        applied = (snapshot.nodes, snapshot.flycast)
        if stale or (snapshot.version != self.version and applied != self._applied):
            self._sync(snapshot)
            self._save(snapshot)
        self._hand_over_plans(snapshot)
        self.version = snapshot.version
        return snapshot

    def _hand_over_plans(self, snapshot: MeshSnapshot) -> None:
        # No exec here: the agent's health thread applies them, gated by its checks.
        if self.fast_plans is not None:
            self.fast_plans.plans = tuple(snapshot.fast)

    def _sync(self, snapshot: MeshSnapshot) -> None:
        # Flycast over the LAN first: its routes are in before the mesh drops the /80s.
        lan = self._sync_flycast_lan(snapshot)
        over_mesh = lan is None or lan.gateway is None
        peers = peers_of(snapshot, self.mesh.node_id, flycast_over_mesh=over_mesh)
        report = self.mesh.sync(peers, self.local_prefixes())
        self._applied = (snapshot.nodes, snapshot.flycast)
        self._synced_at = time.monotonic()
        if lan is not None and lan.retry:
            self._synced_at -= RESYNC_SECONDS  # e.g. a host's MAC not resolved: next cycle
        for reason in (lan.reasons if lan is not None else ()) + report.reasons:
            log.info("mesh: %s", reason)

    def _sync_flycast_lan(self, snapshot: MeshSnapshot) -> FlycastLanReport | None:
        if self.flycast_lan is None:
            return None
        try:
            return self.flycast_lan.sync(snapshot, flycast_edges(snapshot))
        except FerryError as exc:
            log.warning("mesh: flycast over the LAN: %s; keeping it on WireGuard", exc)
            return None

    def _load(self) -> MeshSnapshot | None:
        try:
            return MeshSnapshot.model_validate_json(self.cache.read_text())
        except (OSError, ValueError):
            return None

    def _save(self, snapshot: MeshSnapshot) -> None:
        tmp = self.cache.with_name(self.cache.name + ".tmp")
        tmp.write_text(json.dumps(snapshot.model_dump(mode="json"), indent=1))
        tmp.replace(self.cache)
