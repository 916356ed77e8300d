"""Leases, config versions and cordon in the store: compare-and-set, history, upgrade."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.errors import RevisionConflict
from ferry.model import MachineConfig
from ferry.model.lease import MachineLease
from ferry.store import SqliteStore

from .test_stop_override import _database_at_version, make_machine

LEASE = MachineLease(nonce="n1", expires_at=100, owner="admin", description="d", version="v1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    try:
        yield opened
    finally:
        opened.close()


def test_a_lease_is_written_only_over_the_version_read(store: SqliteStore) -> None:
    assert store.get_lease("m1") is None
    store.put_lease("m1", LEASE, expected=None)
    assert store.get_lease("m1") == LEASE
    with pytest.raises(RevisionConflict):  # someone else took it first
        store.put_lease("m1", LEASE.model_copy(update={"nonce": "n2"}), expected=None)
    with pytest.raises(RevisionConflict):
        store.put_lease("m1", LEASE.model_copy(update={"version": "v3"}), expected="v0")
    refreshed = LEASE.model_copy(update={"expires_at": 200, "version": "v2"})
    store.put_lease("m1", refreshed, expected="v1")
    with pytest.raises(RevisionConflict):
        store.delete_lease("m1", expected="v1")
    assert store.get_lease("m1") == refreshed
    store.delete_lease("m1", expected="v2")
    assert store.get_lease("m1") is None


def test_every_config_version_is_kept_newest_first(store: SqliteStore) -> None:
    machine = store.insert_machine(make_machine())
    updated = store.update_machine(
        machine.id, machine.revision, config=MachineConfig(image="img2"), instance_id="i2"
    )
    # A change that keeps the instance (metadata) rewrites that version's config.
    labelled = MachineConfig(image="img2", metadata={"role": "db"})
    store.update_machine(updated.id, updated.revision, config=labelled)
    versions = store.list_machine_versions(machine.id)
    assert [v.version for v in versions] == ["i2", machine.instance_id]
    assert versions[0].user_config == labelled
    assert versions[1].user_config == machine.config


def test_a_database_from_before_leases_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _database_at_version(path, 3)
    store = SqliteStore(path)
    try:
        old = store.get_machine("m1")
        assert old.cordoned is False
        assert [v.version for v in store.list_machine_versions("m1")] == [old.instance_id]
        assert store.get_lease("m1") is None
        store.update_machine("m1", old.revision, cordoned=True)
        assert store.get_machine("m1").cordoned is True
    finally:
        store.close()
