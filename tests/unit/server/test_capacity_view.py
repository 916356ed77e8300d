"""The control plane's in-memory capacities stay equal to a fresh computation from the store.

A seeded random sequence of creates (from this plane and from a second plane on
the same file, as another process would), destroys reported by an agent,
resizes, host outages and app deletions; whenever the view is supposed to be
exact (after each create, or after a ``sync``) its capacities and next
addresses (host-local IPv4 and 6PN) must be what ``placement.host_capacities``,
``placement.allocate_host_ip`` and ``placement.allocate_private_ip`` compute
from the store afresh.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ferry.errors import CapacityError, ConflictError
from ferry.model import GuestConfig, HostStatus, MachineConfig, MachineState
from ferry.server.capacity_view import CapacityView
from ferry.server.clock import SystemClock
from ferry.server.context import ControlPlane
from ferry.server.placement import allocate_host_ip, allocate_private_ip, host_capacities
from ferry.server.schemas import CreateMachineRequest, RegisterHostRequest, UpdateMachineRequest
from ferry.store import SqliteStore, StateStore

SIZES = ["shared-cpu-1x", "shared-cpu-2x", "performance-1x"]
APPS = ["web", "api", "db"]


def _plane(store: StateStore) -> ControlPlane:
    return ControlPlane.build(store, SystemClock(), host_down_after=3600, registry="")


def _register(plane: ControlPlane, host_id: str, region: str, subnet: str, cpus: int) -> None:
    plane.hosts.register(
        RegisterHostRequest(
            id=host_id,
            region=region,
            address="10.0.0.2",
            cpus=cpus,
            memory_mb=16_384,
            machine_subnet=subnet,
        )
    )


def _request(rng: random.Random, region: str | None = None) -> CreateMachineRequest:
    guest = GuestConfig.from_size(rng.choice(SIZES))
    config = MachineConfig(image="registry.local/app:1", guest=guest)
    return CreateMachineRequest(region=region or rng.choice(["ams", "iad"]), config=config)


def _assert_exact(view: CapacityView, store: StateStore) -> None:
    hosts = store.list_hosts()
    live = store.list_machines(include_destroyed=False)
    assert view.snapshot() == host_capacities(hosts, live)
    assert view.versions == store.placement_state()[0]
    for host in hosts:
        try:
            expected: str | None = allocate_host_ip(host, live)
        except CapacityError:
            expected = None
        try:
            found: str | None = view.allocate_host_ip(host)
        except CapacityError:
            found = None
        assert found == expected, host.id
        assert view.allocate_private_ip(host, 1) == allocate_private_ip(host, 1, live), host.id


def _attempt(action: Callable[..., object], *args: object) -> str:
    try:
        action(*args)
    except CapacityError:
        return "refused"
    return "placed"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_view_equals_a_fresh_computation_after_random_changes(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = SqliteStore(tmp_path / "state.db")
    other_store = SqliteStore(tmp_path / "state.db")
    try:
        plane, other = _plane(store), _plane(other_store)
        # /28 subnets (13 addresses) run out before 16 cpus do: both refusals happen.
        for n, region in enumerate(["ams", "ams", "iad", "iad"]):
            _register(plane, f"{region}-{n}", region, f"10.{n}.0.0/28", cpus=16)
        for app in APPS:
            plane.apps.create(app, "personal", "default")
        view = plane.machines.capacity_view
        seen: Counter[str] = Counter()
        for _ in range(150):
            roll = rng.random()
            machines = store.list_machines(include_destroyed=False)
            if roll < 0.45:
                seen[_attempt(plane.machines.create, rng.choice(APPS), _request(rng))] += 1
                _assert_exact(view, store)
                continue
            if roll < 0.55:  # another control plane process on the same file
                _attempt(other.machines.create, rng.choice(APPS), _request(rng))
            elif roll < 0.75 and machines:  # an agent reports a machine destroyed
                victim = rng.choice(machines)
                store.update_machine(victim.id, victim.revision, state=MachineState.DESTROYED)
            elif roll < 0.85 and machines:
                target = rng.choice(machines)
                size = rng.choice([*SIZES, "performance-8x"])  # 8x: a whole host
                config = MachineConfig(
                    image="registry.local/app:2", guest=GuestConfig.from_size(size)
                )
                update = UpdateMachineRequest(config=config)
                outcome = _attempt(plane.machines.update, target.app_name, target.id, update)
                seen[f"resize {outcome}"] += 1
            elif roll < 0.95:
                host = rng.choice(store.list_hosts())
                down = host.status is HostStatus.UP
                store.set_host_status(host.id, HostStatus.DOWN if down else HostStatus.UP)
            else:
                store.set_app_status(rng.choice(APPS), "deployed")
            if rng.random() < 0.5:  # else the next create finds out by itself
                view.sync()
                _assert_exact(view, store)
        # The sequence did exercise placements, refusals and resizes both ways.
        assert seen["placed"] > 20 and seen["refused"] > 0, seen
        assert seen["resize placed"] > 0 and seen["resize refused"] > 0, seen
    finally:
        other_store.close()
        store.close()


def test_a_refused_placement_gives_its_room_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        plane = _plane(store)
        # One host with room for 16 machines but only 13 addresses.
        _register(plane, "ams-1", "ams", "10.1.0.0/28", cpus=16)
        plane.apps.create("web", "personal", "default")
        config = MachineConfig(image="x", guest=GuestConfig.from_size("shared-cpu-1x"))
        for _ in range(13):
            plane.machines.create("web", CreateMachineRequest(region="ams", config=config))
        with pytest.raises(CapacityError, match="no free machine address"):
            plane.machines.create("web", CreateMachineRequest(region="ams", config=config))
        _assert_exact(plane.machines.capacity_view, store)
    finally:
        store.close()


def test_concurrent_creates_from_two_planes_never_share_an_address_or_overbook(
    tmp_path: Path,
) -> None:
    stores = [SqliteStore(tmp_path / "state.db") for _ in range(2)]
    try:
        planes = [_plane(s) for s in stores]
        _register(planes[0], "ams-1", "ams", "10.1.0.0/24", cpus=8)
        _register(planes[0], "ams-2", "ams", "10.2.0.0/24", cpus=8)
        planes[0].apps.create("web", "personal", "default")
        config = MachineConfig(image="x", guest=GuestConfig.from_size("shared-cpu-1x"))
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()

        def create(plane: ControlPlane) -> None:
            for _ in range(10):
                try:
                    plane.machines.create("web", CreateMachineRequest(region="ams", config=config))
                    outcome = "placed"
                except CapacityError:
                    outcome = "full"
                except ConflictError:
                    outcome = "retry"  # lost the race three times: the caller retries
                with lock:
                    outcomes[outcome] += 1

        threads = [threading.Thread(target=create, args=(planes[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        live = stores[0].list_machines(include_destroyed=False)
        assert outcomes["placed"] == len(live) <= 16
        # A refusal comes only from a view caught up with the store: the hosts were full.
        assert outcomes["full"] == 0 or outcomes["placed"] == 16
        addresses = [(m.host_id, m.host_ip) for m in live]
        assert len(set(addresses)) == len(addresses)
        per_host = Counter(m.host_id for m in live)
        assert all(count <= 8 for count in per_host.values())
        for plane, store in zip(planes, stores, strict=True):
            plane.machines.capacity_view.sync()
            _assert_exact(plane.machines.capacity_view, store)
    finally:
        for store in stores:
            store.close()
