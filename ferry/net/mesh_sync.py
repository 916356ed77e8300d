"""One level-triggered cycle of a host's mesh: the seam the agent calls.

Each cycle the agent passes what the control plane says the mesh is (every
other node as a ``MeshPeer``, oldest first) and the host's own machines'
6PN /112s; ``HostMesh.sync`` then

1. makes sure the host's interface runs (``ensure_interface``: starts
   wireguard-go only when it is not running, e.g. after a crash or a reboot);
2. reads the interface's peers, plans with ``ferry.net.mesh.plan_mesh`` and
   applies the changes with one ``wg set``;
3. routes the peers' prefixes through the interface (never the host's own).

It returns a ``MeshReport``: one line per change and per refused peer, for
the agent to log (and report), and the host's own ``MeshPeer`` announcement
(public key, endpoint, allowed IPs) for the control plane. Blocking (execs
``wg`` and ``ip``): run it off the event loop. Raises ``NetworkError``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry.net import wireguard
from ferry.net.mesh import MeshPeer, MeshSelf, Refusal, plan_mesh
from ferry.net.sixpn import infra_address

DEFAULT_PORT = 51820


@dataclass(frozen=True)
class MeshReport:
    announce: MeshPeer
    """What this host tells the control plane about itself."""
    restarted: bool
    """True when wireguard-go had to be started this cycle."""
    reasons: tuple[str, ...]
    refused: tuple[Refusal, ...]


@dataclass(frozen=True)
class HostMesh:
    """A host's place in the mesh.

    ``netns`` is the namespace holding the host's network (None on a real
    server); ``endpoint`` the ``ip:port`` other hosts dial (None when this
    host is behind NAT and dials out, keeping the path open with
    ``keepalive`` seconds); ``state_dir`` holds ``wireguard/private.key``.
    An edge is a node of the mesh too: it gives the address the control plane
    gave it as ``own_address`` (its ``host_number`` is then unused).
    """

    node_id: str
    host_number: int
    ifname: str
    state_dir: Path
    netns: str | None = None
    endpoint: str | None = None
    listen_port: int = DEFAULT_PORT
    keepalive: int = 0
    own_address: str = ""

    @property
    def key_file(self) -> Path:
        return self.state_dir / "wireguard" / "private.key"

    @property
    def address(self) -> str:
        """The node's own mesh address (network 0)."""
        return self.own_address or str(infra_address(self.host_number))

    def announce(self, local_prefixes: Sequence[str]) -> MeshPeer:
        """This host as a peer of the others: its key (made now if missing), its
        endpoint and its prefixes (its machines' /112s and its own /128)."""
        ips = [f"{self.address}/128", *local_prefixes]
        collapsed = ipaddress.collapse_addresses(ipaddress.IPv6Network(p) for p in ips)
        return MeshPeer(
            node_id=self.node_id,
            public_key=wireguard.ensure_key(self.key_file),
            endpoint=self.endpoint,
            allowed_ips=tuple(str(n) for n in collapsed),
            keepalive=self.keepalive,
        )

    def sync(self, desired: Sequence[MeshPeer], local_prefixes: Sequence[str]) -> MeshReport:
        """One cycle: interface up, peers as ``desired``, routes; see the module doc."""
        announce = self.announce(local_prefixes)
        restarted = wireguard.ensure_interface(
            self.netns, self.ifname, self.key_file, self.listen_port, self.address
        )
        me = MeshSelf(self.node_id, announce.public_key, self.endpoint, announce.allowed_ips)
        plan = plan_mesh(me, desired, wireguard.current_peers(self.ifname))
        wireguard.apply_changes(self.ifname, plan.changes)
        routes = wireguard.set_routes(self.netns, self.ifname, plan.routes)
        reasons = [f"started wireguard-go for {self.ifname}"] if restarted else []
        reasons += [c.reason for c in plan.changes] + routes
        reasons += [r.reason for r in plan.refused]
        return MeshReport(announce, restarted, tuple(reasons), plan.refused)

    def stop(self) -> None:
        """Remove the interface and stop its wireguard-go (host leaving, teardown).
        The key file stays: the host keeps its identity if it comes back."""
        wireguard.delete_interface(self.netns, self.ifname)
