"""The mesh registry: nodes announce their public key and endpoint, and every node
reads the others back with the 6PN prefixes each one carries.

The control plane never sees a private key. A host's ``allowed_ips`` are its
own mesh address and the /112 of every live machine placed on it, so a peer
routes a machine's address to the host the machine is on; an edge carries its
own address and the /120 of every developer WireGuard peer of its region (it
is their gateway, ``ferry.net.peer_gateway``). The snapshot's ``version``
grows with any change of either (node list or machines), so nodes long-poll it.
The organizations' Flycast /80s ride beside the nodes (``MeshSnapshot.flycast``):
every edge serves them, and each host routes them to its region's edge.
So do the ports each edge forwards in its kernel (``MeshSnapshot.fast``, kept in
memory: an edge publishes again when its plan changes and every
``ferry.proxy.flycast_fast.REPUBLISH_SECONDS``), which a host whose own machines
are a port's every target forwards itself (``ferry.net.flycast_host``).
"""

from __future__ import annotations

import ipaddress
import threading
import time

from ferry.errors import NotFoundError, ValidationError
from ferry.model.mesh import (
    EdgeFastPlan,
    MeshAnnouncement,
    MeshNode,
    MeshNodeKind,
    MeshSnapshot,
    edge_node_id,
)
from ferry.net import peer_gateway, sixpn
from ferry.net.flycast_host import checked_plan
from ferry.net.mesh import endpoint_error, public_key_error
from ferry.server.clock import Clock
from ferry.server.flycast_service import served_prefixes, served_records
from ferry.server.placement import known_regions
from ferry.server.watch import ChangeNotifier
from ferry.store.base import StateStore
from ferry.store.mesh_base import MeshNodeRecord

__all__ = ["MeshService"]


class MeshService:
    """Announcements and snapshots of the mesh. Methods block (store calls)."""

    def __init__(self, store: StateStore, clock: Clock, notifier: ChangeNotifier) -> None:
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._lock = threading.Lock()
        self._fast: dict[str, EdgeFastPlan] = {}
        # Grows with every published change. It starts from the clock so that the
        # snapshot's version never goes back across a restart of the control plane.
        self._fast_revision = time.time_ns() // 1_000_000

    def announce_host(self, host_id: str, body: MeshAnnouncement) -> MeshNode:
        """Record host ``host_id``'s key and endpoint (it must be registered: 404)."""
        host = self._store.get_host(host_id)
        return self._announce(host_id, MeshNodeKind.HOST, host.region, body)

    def announce_edge(self, region: str, body: MeshAnnouncement) -> MeshNode:
        """Record ``region``'s edge key and endpoint (a region some host registered in)."""
        if region not in known_regions(self._store.list_hosts()):
            raise NotFoundError(
                f"region {region!r} has no hosts",
                hint="an edge joins the mesh of a region whose hosts registered",
            )
        return self._announce(edge_node_id(region), MeshNodeKind.EDGE, region, body)

    def publish_fast(self, region: str, plan: EdgeFastPlan) -> EdgeFastPlan:
        """Record what ``region``'s edge forwards in its kernel now (replaces its last
        plan; ``ValidationError`` for an entry that is not a Flycast port of one
        organization's machines, and nothing changes). Wakes the nodes' long polls
        only when the plan differs."""
        plan = checked_plan(region, plan)
        with self._lock:
            if self._fast.get(region) == plan:
                return plan
            self._fast[region] = plan
            self._fast_revision += 1
        self._notifier.notify(None)
        return plan

    def version(self) -> int:
        """Grows with every node change, machine change and published plan."""
        with self._lock:
            revision = self._fast_revision
        return self._store.mesh_version() + self._store.resource_version() + revision

    def snapshot(self) -> MeshSnapshot:
        """Every node with what it carries, and the version it stands for."""
        version = self.version()
        carried: dict[str, list[str]] = {}
        # A host carries the /80 of each organization with machines on it, not each
        # machine's /112: a machine starting or going away changes no peer anywhere
        # (routing it inside the /80 is the host's business).
        for machine in self._store.list_machines(include_destroyed=False):
            try:
                address = sixpn.parse(machine.private_ip)
            except ValidationError:
                continue  # no 6PN address (yet): nothing to route
            host_prefix = str(sixpn.host_prefix(address.network, address.host))
            if host_prefix not in carried.setdefault(machine.host_id, []):
                carried[machine.host_id].append(host_prefix)
        # An edge is its region's gateway for developers' WireGuard peers: it carries their /120s.
        for peer in self._store.list_wireguard_peers():
            network = self._store.get_org(peer.org_slug).sixpn_network
            prefix = peer_gateway.peer_prefix(network, peer.number)
            carried.setdefault(edge_node_id(peer.region), []).append(str(prefix))
        numbers = {host.id: host.sixpn_host for host in self._store.list_hosts()}
        nodes = [
            _node(record, numbers.get(record.id, 0), carried.get(record.id, []))
            for record in self._nodes()
        ]
        flycast = served_prefixes(served_records(self._store))
        with self._lock:
            fast = [plan for _, plan in sorted(self._fast.items()) if plan.ports]
        return MeshSnapshot(version=version, nodes=nodes, flycast=flycast, fast=fast)

    def _nodes(self) -> list[MeshNodeRecord]:
        return self._store.list_mesh_nodes()

    def _announce(
        self, node_id: str, kind: MeshNodeKind, region: str, body: MeshAnnouncement
    ) -> MeshNode:
        body = checked(body)
        before = self._store.mesh_version()
        record = self._store.announce_mesh_node(
            node_id,
            kind=kind,
            region=region,
            public_key=body.public_key,
            endpoint=body.endpoint,
            now=self._clock.now(),
        )
        if self._store.mesh_version() != before:
            self._notifier.notify(None)  # wake every node's long poll
        return self.snapshot_node(record)

    def snapshot_node(self, record: MeshNodeRecord) -> MeshNode:
        """``record`` as the snapshot shows it (its machines' prefixes included)."""
        found = next((n for n in self.snapshot().nodes if n.id == record.id), None)
        assert found is not None  # just announced, under the store's lock
        return found


def _node(record: MeshNodeRecord, host_number: int, machine_prefixes: list[str]) -> MeshNode:
    """A host's address is its 6PN host number's (``infra_address``), so its mesh
    address and its machines' addresses name the same host; an edge's is its own."""
    if record.kind is MeshNodeKind.HOST:
        address = sixpn.infra_address(host_number)
        allowed = [f"{address}/128", *sorted(machine_prefixes)]
    else:
        address = sixpn.edge_address(record.number)
        allowed = [f"{address}/128", *sorted(machine_prefixes)]  # its peers' /120s
    return MeshNode(
        id=record.id,
        kind=record.kind,
        region=record.region,
        public_key=record.public_key,
        endpoint=record.endpoint,
        address=str(address),
        allowed_ips=allowed,
        updated_at=record.updated_at,
    )


def checked(body: MeshAnnouncement) -> MeshAnnouncement:
    """``body`` with its endpoint written as WireGuard writes it; ``ValidationError``
    naming a key that is not a public key or an endpoint no peer can send to."""
    if problem := public_key_error(body.public_key):
        raise ValidationError(
            f"public_key: {problem}", hint="send the output of `wg pubkey`, never the private key"
        )
    hint = "the address and UDP port other nodes reach this one at, e.g. 192.0.2.7:51820"
    if problem := endpoint_error(body.endpoint):
        raise ValidationError(problem, hint=hint)
    host, _, port = body.endpoint.rpartition(":")
    ip = ipaddress.ip_address(host.strip("[]"))
    if ip.is_unspecified or ip.is_multicast:
        raise ValidationError(
            f"endpoint {body.endpoint!r} is not an address a peer can send to", hint=hint
        )
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return MeshAnnouncement(public_key=body.public_key, endpoint=f"{shown}:{int(port)}")
