"""The store's side of placement: versions checked inside the insert, the epoch, deltas."""

from __future__ import annotations

import pytest

from ferry.errors import ConflictError, RevisionConflict
from ferry.model import HostStatus, MachineState
from ferry.store import StateStore
from ferry.store.base import PlacementVersions, StalePlacement

from .factories import T0, make_app, make_event, make_host, make_machine


def _versions(store: StateStore) -> PlacementVersions:
    return store.placement_state()[0]


def test_insert_returns_what_a_read_returns(store: StateStore) -> None:
    store.create_app(make_app())
    stored = store.insert_machine(make_machine(), make_event(1))
    assert stored == store.get_machine("m1")


def test_insert_with_stale_versions_writes_nothing(store: StateStore) -> None:
    store.create_app(make_app())
    store.upsert_host(make_host())
    before = _versions(store)
    store.insert_machine(make_machine("m1"), make_event(1), expected=before)
    after = _versions(store)
    assert after == PlacementVersions(before.resource_version + 1, before.epoch)
    with pytest.raises(RevisionConflict, match="moved on while placing") as raised:
        store.insert_machine(make_machine("m2", ip="10.1.0.3"), make_event(2), expected=before)
    # It brings back what changed since, read in the same transaction.
    assert isinstance(raised.value, StalePlacement)
    assert raised.value.versions == after
    assert raised.value.changed == [store.get_machine("m1")]
    assert _versions(store) == after
    assert [m.id for m in store.list_machines()] == ["m1"]
    assert [e.id for e in store.list_events("m2")] == []


def test_a_stale_epoch_asks_for_a_full_read(store: StateStore) -> None:
    store.create_app(make_app())
    before = _versions(store)
    store.upsert_host(make_host())
    with pytest.raises(StalePlacement) as raised:
        store.insert_machine(make_machine("m1"), expected=before)
    assert raised.value.changed is None
    assert raised.value.versions == PlacementVersions(before.resource_version, before.epoch + 1)
    assert store.list_machines() == []


def test_a_live_address_is_still_refused_by_the_store(store: StateStore) -> None:
    store.create_app(make_app())
    store.insert_machine(make_machine("m1"))
    with pytest.raises(ConflictError, match=r"10\.1\.0\.2 on host ams-1 is already in use"):
        store.insert_machine(make_machine("m2"), expected=_versions(store))


def test_epoch_moves_on_writes_a_delta_cannot_express(store: StateStore) -> None:
    store.create_app(make_app())
    epoch = _versions(store).epoch
    store.upsert_host(make_host())
    assert _versions(store).epoch == epoch + 1
    store.record_heartbeat("ams-1", T0)  # already up: nothing placement reads changed
    assert _versions(store).epoch == epoch + 1
    store.set_host_status("ams-1", HostStatus.DOWN)
    assert _versions(store).epoch == epoch + 2
    store.record_heartbeat("ams-1", T0)  # back up
    assert _versions(store).epoch == epoch + 3
    store.set_app_status("web", "destroying")
    assert _versions(store).epoch == epoch + 4
    store.delete_app("web")
    assert _versions(store).epoch == epoch + 5


def test_machines_since_lists_every_write_after_a_version_destroyed_ones_too(
    store: StateStore,
) -> None:
    store.create_app(make_app())
    start = _versions(store).resource_version
    store.insert_machine(make_machine("m1"))
    second = store.insert_machine(make_machine("m2", ip="10.1.0.3"))
    store.update_machine("m2", second.revision, state=MachineState.DESTROYED)
    versions, changed = store.machines_since(start)
    assert versions == _versions(store)
    assert [m.id for m in changed] == ["m1", "m2"]
    assert changed[1].state is MachineState.DESTROYED
    later, nothing = store.machines_since(versions.resource_version)
    assert (later, nothing) == (versions, [])
    live = store.placement_state()[2]
    assert [m.id for m in live] == ["m1"]
