"""The region edge as the gateway of developers' WireGuard peers (``ferry wireguard``).

Once the edge is on the mesh, two threads: one keeps the peer interface
(``ferry.net.peer_gateway.PeerGateway``: its own port, nftables that let a
peer reach only its organization) matching the peers the control plane lists
for this region, every second; the other serves ``.internal`` on fdaa::3 in
the edge's namespace for those peers' organizations (queries to a peer's
``fdaa:<org>::3`` are sent there), fed like a host's resolver.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path

from ferry.agent.dns_loop import DnsLoop
from ferry.client import FerryClient
from ferry.errors import FerryError
from ferry.net import wireguard
from ferry.net.peer_gateway import GatewayPeer, PeerGateway, gateway_interface_name, gateway_port

__all__ = ["start_peer_gateway"]

log = logging.getLogger("ferry.proxy.gateway")

SYNC_SECONDS = 1.0


def start_peer_gateway(
    client: FerryClient,
    region: str,
    scope: str,
    edge_number: int,
    mesh_endpoint: str,
    state_dir: Path,
    stopping: threading.Event,
) -> None:
    """Start the resolver and the gateway loop (threads; they stop with ``stopping``)."""
    try:
        DnsLoop(
            partial(client.watch_gateway_records, region),
            region,
            state_dir / "gateway-records.json",
            None,
            stopping,
        ).start()
    except (FerryError, OSError) as exc:
        log.error("gateway resolver not started: %s", exc)
    gateway = PeerGateway(
        ifname=gateway_interface_name(scope, edge_number),
        key_file=state_dir / "wireguard" / "private.key",
        listen_port=gateway_port(mesh_endpoint),
    )
    thread = threading.Thread(
        target=_follow, args=(client, region, gateway, stopping), name="gateway", daemon=True
    )
    thread.start()


def _follow(
    client: FerryClient, region: str, gateway: PeerGateway, stopping: threading.Event
) -> None:
    applied: list[GatewayPeer] | None = None
    while not stopping.is_set():
        try:
            peers = [
                GatewayPeer(p.name, p.org_slug, p.public_key, p.prefix, p.org_prefix)
                for p in client.gateway_wireguard_peers(region)
            ]
            # Level-triggered, but cheap when nothing moved: no exec while the peers are
            # the ones applied and wireguard-go still serves the interface.
            if peers != applied or not wireguard.is_running(gateway.ifname):
                report = gateway.sync(peers)
                applied = peers
                for reason in report.reasons:
                    log.info("gateway: %s", reason)
        except FerryError as exc:
            log.warning("gateway: %s; keeping the peers it has", exc)
        stopping.wait(SYNC_SECONDS)
