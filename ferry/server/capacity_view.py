"""The hosts' capacities kept in memory by the control plane, for placement.

Placing a machine needs every host of a region with the cpus, memory,
per-app counts and addresses (host-local IPv4 and 6PN machine numbers) its
live machines take. Reading and summing
them from the store on every create costs milliseconds; this view keeps
them, and stays correct this way:

* It knows the store's ``PlacementVersions`` it is exact for. ``sync``
  catches up: on an epoch change (a host registered or up/down, an app
  destroying or deleted) it rebuilds from ``placement_state``; otherwise it
  applies the machines written since its ``resource_version``
  (``machines_since``), each replacing that machine's previous claim.
* The create path (``machine_create.py``) decides on the view and inserts
  with ``expected=view.versions``: the store writes only if nothing changed
  since (checked inside the insert's transaction), else raises
  ``StalePlacement`` carrying what changed; the caller ``catch_up``s with it
  and decides again. So a decision never commits on stale capacities,
  whoever wrote meanwhile.
* ``place`` asks the incremental ``ferry.scheduler.Scheduler`` (same answer
  as ``place_machine`` on the same capacities), which commits the machine
  tentatively; after the insert ``record`` keeps it and moves the view to
  the versions the insert produced, without a read; if anything fails in
  between, ``abandon`` takes it back.

Not thread-safe: the caller holds its placement lock around every use.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ferry.errors import CapacityError, FerryError
from ferry.model import App, Host, Machine, MachineState
from ferry.net.sixpn import lowest_free, machine_address, parse
from ferry.scheduler import HostCapacity, NoPlacement, Placement, PlacementRequest, Scheduler
from ferry.server.placement import allocate_host_ip, capacities_of, known_regions
from ferry.store import StateStore
from ferry.store.base import PlacementVersions

__all__ = ["CapacityView"]


@dataclass(frozen=True)
class _Claim:
    """What one live machine takes from its host."""

    host_id: str
    app: str
    cpus: int
    memory_mb: int
    ip: int  # the host-local IPv4 address as a number; -1 when it is not one
    sixpn: int = 0  # the 6PN machine number of its private address; 0 when none


def _claim(machine: Machine) -> _Claim | None:
    if machine.state is MachineState.DESTROYED:
        return None  # its room and addresses are free again
    guest = machine.config.effective_guest
    try:
        ip = int(ipaddress.IPv4Address(machine.host_ip))
    except ValueError:
        ip = -1
    try:
        sixpn = parse(machine.private_ip).machine
    except FerryError:
        sixpn = 0
    return _Claim(machine.host_id, machine.app_name, guest.cpus, guest.memory_mb, ip, sixpn)


class CapacityView:
    """Hosts, their usage and cached apps, exact for ``versions`` of the store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self.versions: PlacementVersions | None = None
        self.hosts: dict[str, Host] = {}
        self.regions: list[str] = []
        self._claims: dict[str, _Claim] = {}
        self._ips: dict[str, Counter[int]] = {}  # host -> address -> machines holding it
        self._sixpn: dict[str, Counter[int]] = {}  # host -> 6PN machine number -> holders
        self._scheduler = Scheduler([])
        self._pending: _Claim | None = None  # placed, not yet recorded or abandoned
        self._apps: dict[str, App] = {}
        self._spans: dict[str, tuple[int, ...]] = {}  # subnet -> _span(subnet)

    # -- keeping current -------------------------------------------------------
    def sync(self) -> None:
        """Catch up with the store: a delta of machines, or a rebuild on a new epoch."""
        self.abandon()
        if self.versions is None:
            self.rebuild()
            return
        versions, changed = self._store.machines_since(self.versions.resource_version)
        self.catch_up(versions, changed)

    def catch_up(self, versions: PlacementVersions, changed: list[Machine] | None) -> None:
        """Apply ``changed``, the machines written after this view's resource version,
        read at ``versions``; rebuild instead when the epoch moved (or ``changed`` is
        ``None``: what ``StalePlacement`` carries then)."""
        self.abandon()
        if self.versions is None or changed is None or versions.epoch != self.versions.epoch:
            self.rebuild()
            return
        for machine in changed:
            self._set_claim(machine.id, _claim(machine))
        self.versions = versions

    def rebuild(self) -> None:
        """Forget everything and read hosts and live machines afresh."""
        versions, hosts, machines = self._store.placement_state()
        self.hosts = {h.id: h for h in hosts}
        self.regions = known_regions(hosts)
        self._claims, self._ips, self._apps, self._pending = {}, {}, {}, None
        self._sixpn = {}
        for machine in machines:
            claim = _claim(machine)
            if claim is not None and claim.host_id in self.hosts:
                self._claims[machine.id] = claim
                self._hold_addresses(claim)
        self._scheduler = Scheduler(_capacities(hosts, self._claims.values()))
        self.versions = versions

    def place(self, request: PlacementRequest) -> Placement | NoPlacement:
        """The scheduler's answer; a ``Placement`` is held until ``record`` or ``abandon``."""
        self.abandon()
        outcome = self._scheduler.place(request)
        if isinstance(outcome, Placement):
            self._pending = _Claim(
                outcome.host_id, request.app, request.cpus, request.memory_mb, -1
            )
        return outcome

    def place_on(self, host_id: str, request: PlacementRequest) -> Placement | NoPlacement:
        """As ``place``, on ``host_id`` only (the host of the machine's volume)."""
        self.abandon()
        outcome = self._scheduler.place_on(host_id, request)
        if isinstance(outcome, Placement):
            self._pending = _Claim(
                outcome.host_id, request.app, request.cpus, request.memory_mb, -1
            )
        return outcome

    def abandon(self) -> None:
        """Give back the room of a placement that was not stored."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._scheduler.release(pending.host_id, pending.app, pending.cpus, pending.memory_mb)

    def record(self, machine: Machine) -> None:
        """Keep ``machine``, just inserted by the caller with ``expected=self.versions``
        after ``place`` chose its host."""
        pending, self._pending = self._pending, None
        claim = _claim(machine)
        assert self.versions is not None and pending is not None and claim is not None
        assert (pending.host_id, pending.app) == (claim.host_id, claim.app)
        self._claims[machine.id] = claim
        self._hold_addresses(claim)
        self.versions = PlacementVersions(self.versions.resource_version + 1, self.versions.epoch)

    def _set_claim(self, machine_id: str, claim: _Claim | None) -> None:
        old = self._claims.pop(machine_id, None)
        if old is not None:
            self._scheduler.release(old.host_id, old.app, old.cpus, old.memory_mb)
            for held, key in ((self._ips, old.ip), (self._sixpn, old.sixpn)):
                counts = held[old.host_id]
                counts[key] -= 1
                if counts[key] == 0:
                    del counts[key]
        if claim is not None and claim.host_id in self.hosts:
            self._claims[machine_id] = claim
            self._scheduler.hold(claim.host_id, claim.app, claim.cpus, claim.memory_mb)
            self._hold_addresses(claim)

    def _hold_addresses(self, claim: _Claim) -> None:
        self._ips.setdefault(claim.host_id, Counter())[claim.ip] += 1
        self._sixpn.setdefault(claim.host_id, Counter())[claim.sixpn] += 1

    # -- reading -----------------------------------------------------------------
    def app(self, name: str) -> App:
        """The app ``name`` (cached until the next epoch: status changes bump it)."""
        found = self._apps.get(name)
        if found is None:
            found = self._apps[name] = self._store.get_app(name)
        return found

    def snapshot(self) -> list[HostCapacity]:
        """Every host's capacity as the view sees it, in host id order."""
        return self._scheduler.snapshot()

    def allocate_private_ip(self, host: Host, network: int) -> str:
        """The 6PN address of a new machine of the organization with 6PN ``network`` on
        ``host``: the lowest machine number no live machine of the host holds, so a
        number comes back only once its machine is destroyed (``ferry.net.sixpn``)."""
        used = self._sixpn.get(host.id) or Counter()
        return str(machine_address(network, host.sixpn_host, lowest_free(used)))

    def allocate_host_ip(self, host: Host) -> str:
        """The lowest free address of the host's subnet (as ``allocate_host_ip``)."""
        used = self._ips.get(host.id) or Counter()
        span = self._spans.get(host.machine_subnet)
        if span is None:
            span = self._spans[host.machine_subnet] = _span(host.machine_subnet)
        if not span:
            live = self._store.list_machines(host_id=host.id, include_destroyed=False)
            return allocate_host_ip(host, live)  # the slow path of odd subnets
        for number in range(*span):
            if number not in used:
                return str(ipaddress.IPv4Address(number))
        raise CapacityError(
            f"host {host.id} in region {host.region} has no free machine address "
            f"in {host.machine_subnet}",
            hint="destroy unused machines or register the host with a larger subnet",
        )


def _span(subnet: str) -> tuple[int, ...]:
    """(first, end) of the addresses an IPv4 subnet of /30 or larger hands out —
    not the network, the .1 gateway or the broadcast address — else ``()``."""
    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return ()
    if not isinstance(network, ipaddress.IPv4Network) or network.prefixlen > 30:
        return ()
    return (int(network.network_address) + 2, int(network.broadcast_address))


def _capacities(hosts: list[Host], claims: Iterable[_Claim]) -> list[HostCapacity]:
    return capacities_of(hosts, ((c.host_id, c.app, c.cpus, c.memory_mb) for c in claims))
