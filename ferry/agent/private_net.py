"""Start a host's part of the private network: the WireGuard mesh and the resolver.

Settings say what this host runs (``PrivateNetSettings``): a mesh endpoint (the
``ip:port`` other nodes reach this host's WireGuard at) turns the mesh on; a
resolver upstream (or ``dns=True``) turns on ``.internal`` DNS on fdaa::3.
Either can be off (a host outside any mesh, unit setups). Both run in threads
of their own and never take the agent's reconcile loop down with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ferry.agent.dns_loop import DnsLoop
from ferry.agent.flycast_host import HostFastView
from ferry.agent.mesh_loop import MeshLoop
from ferry.client import FerryClient
from ferry.errors import ValidationError
from ferry.model import Host
from ferry.model.mesh import MeshNode
from ferry.net import wireguard
from ferry.net.flycast_lan_sync import HostFlycastLan
from ferry.net.mesh_sync import DEFAULT_PORT, HostMesh

__all__ = ["PrivateNetSettings", "start_private_network"]

log = logging.getLogger("ferry.agent")

RESOLV_CONF = "nameserver fdaa::3\noptions timeout:2 attempts:2\n"


@dataclass(frozen=True)
class PrivateNetSettings:
    mesh_endpoint: str | None = None  # "ip:port"; None: no mesh
    mesh_scope: str = "ferry"  # makes WireGuard interface names unique on one kernel
    dns: bool = False
    dns_upstream: str | None = None  # "ip:port" for names outside .internal

    def mesh_interface(self, host: Host) -> tuple[str, ...]:
        """The host's WireGuard interface, when it is on the mesh."""
        if not self.mesh_endpoint:
            return ()
        return (wireguard.interface_name(self.mesh_scope, host.sixpn_host),)

    def upstream(self) -> tuple[str, int] | None:
        if not self.dns_upstream:
            return None
        address, _, port = self.dns_upstream.rpartition(":")
        if not address or not port.isdigit():
            raise ValidationError(
                f"resolver upstream {self.dns_upstream!r} is not ip:port", hint="e.g. 10.0.0.1:53"
            )
        return address.strip("[]"), int(port)


def resolv_conf(state_dir: Path) -> Path:
    """The /etc/resolv.conf every machine of the host gets: ask fdaa::3."""
    path = state_dir / "resolv.conf"
    if not path.exists() or path.read_text() != RESOLV_CONF:
        path.write_text(RESOLV_CONF)
    return path


def start_private_network(
    settings: PrivateNetSettings,
    client: FerryClient,
    host: Host,
    state_dir: Path,
    local_prefixes: Callable[[], Sequence[str]],
    stopping: threading.Event,
    fast_plans: HostFastView | None = None,
) -> list[threading.Thread]:
    """Start the mesh and resolver threads ``settings`` ask for; return them.
    ``fast_plans`` gets the region edges' published kernel paths (``MeshSnapshot.fast``)."""
    threads: list[threading.Thread] = []
    if settings.dns:
        dns = DnsLoop(
            partial(client.watch_internal_records, host.id),
            host.region,
            state_dir / "internal-records.json",
            settings.upstream(),
            stopping,
        )
        threads += dns.start()
        log.info("resolver for .internal on fdaa::3 (upstream %s)", settings.dns_upstream)
    if settings.mesh_endpoint:
        port = int(settings.mesh_endpoint.rpartition(":")[2] or DEFAULT_PORT)
        mesh = HostMesh(
            node_id=host.id,
            host_number=host.sixpn_host,
            ifname=settings.mesh_interface(host)[0],
            state_dir=state_dir,
            endpoint=settings.mesh_endpoint,
            listen_port=port,
        )

        def announce(public_key: str, endpoint: str) -> MeshNode:
            return client.announce_host_mesh(host.id, public_key, endpoint)

        # Flycast goes to the region's edge over the LAN when the edge is on it.
        lan = HostFlycastLan(settings.mesh_endpoint, host.id)
        cache = state_dir / "mesh.json"
        loop = MeshLoop(client, announce, mesh, local_prefixes, stopping, cache, lan, fast_plans)
        thread = threading.Thread(target=loop.run, name="mesh", daemon=True)
        thread.start()
        threads.append(thread)
        log.info("mesh: %s at %s", mesh.ifname, settings.mesh_endpoint)
    return threads
