"""The edge as a node of the WireGuard mesh: how it reaches machines on hosts it
shares no network with (a joined remote server) and over which it is reached.

The edge makes its key pair in its state directory, announces the public key
and its endpoint (``PUT /v1/edges/{region}/mesh``) and gets its mesh address
back, then runs the same ``MeshLoop`` the hosts' agents run, carrying only its
own /128. While the control plane is down at start, the address comes from
the last snapshot the edge kept, so the mesh comes back without it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ferry.agent.mesh_loop import MeshLoop
from ferry.client import FerryClient
from ferry.errors import FerryError
from ferry.model.mesh import MeshNode, MeshSnapshot, edge_node_id
from ferry.net import sixpn, wireguard
from ferry.net.flycast_lan_sync import EdgeFlycastLan, EdgeLanView
from ferry.net.mesh_sync import HostMesh
from ferry.proxy.edge_gateway import start_peer_gateway

__all__ = ["start_edge_mesh"]

log = logging.getLogger("ferry.proxy.mesh")

RETRY_SECONDS = 1.0


def start_edge_mesh(
    client: FerryClient,
    region: str,
    scope: str,
    endpoint: str,
    state_dir: Path,
    stopping: threading.Event,
    view: EdgeLanView | None = None,
) -> threading.Thread:
    """Join the mesh in a thread of its own (it retries until the control plane answers);
    ``view`` gets the LAN hosts it checks (Flycast's kernel path reads them)."""
    thread = threading.Thread(
        target=_run, args=(client, region, scope, endpoint, state_dir, stopping, view),
        name="mesh", daemon=True,
    )  # fmt: skip
    thread.start()
    return thread


def _run(
    client: FerryClient,
    region: str,
    scope: str,
    endpoint: str,
    state_dir: Path,
    stopping: threading.Event,
    view: EdgeLanView | None,
) -> None:
    cache = state_dir / "mesh.json"
    node_id = edge_node_id(region)
    public_key = wireguard.ensure_key(state_dir / "wireguard" / "private.key")

    def announce(key: str, where: str) -> MeshNode:
        return client.announce_edge_mesh(region, key, where)

    address = _cached_address(cache, node_id)
    while address is None and not stopping.is_set():
        try:
            address = announce(public_key, endpoint).address
        except FerryError as exc:
            log.warning("mesh: cannot join yet: %s", exc)
            stopping.wait(RETRY_SECONDS)
    if address is None:
        return
    number = sixpn.parse(address).machine
    mesh = HostMesh(
        node_id=node_id,
        host_number=0,
        ifname=wireguard.interface_name(scope, number, "e"),
        state_dir=state_dir,
        endpoint=endpoint,
        listen_port=int(endpoint.rpartition(":")[2]),
        own_address=address,
    )
    log.info("mesh: %s at %s as %s", mesh.ifname, endpoint, address)
    start_peer_gateway(client, region, scope, number, endpoint, state_dir, stopping)
    # Hosts on the edge's LAN send Flycast over it: answer them over it, check sources.
    lan = EdgeFlycastLan(endpoint, node_id, view=view)
    MeshLoop(client, announce, mesh, list, stopping, cache, lan).run()


def _cached_address(cache: Path, node_id: str) -> str | None:
    try:
        snapshot = MeshSnapshot.model_validate_json(cache.read_text())
    except (OSError, ValueError):
        return None
    return next((n.address for n in snapshot.nodes if n.id == node_id), None)
