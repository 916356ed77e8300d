"""The StateStore contract, run against every backend in conftest.BACKENDS."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ferry.errors import ConflictError, NotFoundError, RevisionConflict
from ferry.model import DesiredState, HostStatus, MachineState
from ferry.store import SqliteStore, StateStore

from .factories import T0, make_app, make_event, make_host, make_machine


def test_default_org_exists(store: StateStore) -> None:
    assert store.get_org("personal").slug == "personal"
    with pytest.raises(NotFoundError, match="nope"):
        store.get_org("nope")


def test_apps_create_list_and_duplicates(store: StateStore) -> None:
    created = store.create_app(make_app("web"))
    assert created.name == "web" and created.machine_count == 0
    store.create_app(make_app("api"))
    assert [a.name for a in store.list_apps()] == ["api", "web"]
    assert store.list_apps("other") == []
    with pytest.raises(ConflictError, match="already taken"):
        store.create_app(make_app("web"))
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.get_app("ghost")


def test_machine_round_trip_keeps_every_field(store: StateStore) -> None:
    store.create_app(make_app())
    machine = make_machine()
    stored = store.insert_machine(machine, make_event(1))
    assert stored.revision == 1
    assert stored.model_dump(exclude={"revision"}) == machine.model_dump(exclude={"revision"})
    assert store.get_app("web").machine_count == 1
    assert [e.id for e in store.list_events("m1")] == ["ev1"]


def test_every_machine_write_bumps_the_resource_version(store: StateStore) -> None:
    store.create_app(make_app())
    assert store.resource_version() == 1
    m = store.insert_machine(make_machine())
    assert store.resource_version() == 2
    store.update_machine(m.id, m.revision, state=MachineState.STARTED)
    assert store.resource_version() == 3
    store.append_event(m.id, make_event(2))
    store.append_logs(m.id, ["hello"])
    assert store.resource_version() == 3


def test_stale_revision_is_rejected_and_changes_nothing(store: StateStore) -> None:
    store.create_app(make_app())
    m = store.insert_machine(make_machine())
    store.update_machine(m.id, m.revision, desired_state=DesiredState.STOPPED)
    version = store.resource_version()
    with pytest.raises(RevisionConflict, match="revision 2, not 1"):
        store.update_machine(m.id, m.revision, desired_state=DesiredState.DESTROYED)
    assert store.get_machine(m.id).desired_state is DesiredState.STOPPED
    assert store.resource_version() == version
    with pytest.raises(NotFoundError):
        store.update_machine("ghost", 1, state=MachineState.STARTED)


def test_update_appends_event_atomically(store: StateStore) -> None:
    store.create_app(make_app())
    m = store.insert_machine(make_machine(), make_event(1))
    after = store.update_machine(
        m.id, 1, event=make_event(2, "start"), state=MachineState.STARTED, generation=3
    )
    assert (after.state, after.generation, after.revision) == (MachineState.STARTED, 3, 2)
    assert [e.type for e in store.list_events(m.id)] == ["start", "launch"]


def test_unknown_fields_are_refused(store: StateStore) -> None:
    store.create_app(make_app())
    store.insert_machine(make_machine())
    with pytest.raises(ValueError, match="region"):
        store.update_machine("m1", 1, region="iad")


def test_live_address_is_unique_per_host_but_reusable_after_destroy(store: StateStore) -> None:
    store.create_app(make_app())
    first = store.insert_machine(make_machine("m1"))
    with pytest.raises(ConflictError):
        store.insert_machine(make_machine("m2"))
    store.update_machine(first.id, 1, state=MachineState.DESTROYED)
    assert store.insert_machine(make_machine("m2")).host_ip == "10.1.0.2"
    assert store.insert_machine(make_machine("m3", host="iad-1")).host_ip == "10.1.0.2"


def test_host_snapshot_leaves_out_destroyed_and_tracks_host_version(store: StateStore) -> None:
    store.create_app(make_app())
    a = store.insert_machine(make_machine("m1"))
    store.insert_machine(make_machine("m2", ip="10.1.0.3"))
    store.insert_machine(make_machine("m3", host="iad-1"))
    snap = store.host_snapshot("ams-1")
    assert [m.id for m in snap.machines] == ["m1", "m2"]
    assert (snap.resource_version, snap.host_version) == (4, 3)
    store.update_machine(a.id, 1, state=MachineState.DESTROYED)
    snap = store.host_snapshot("ams-1")
    assert [m.id for m in snap.machines] == ["m2"] and snap.host_version == 5
    assert store.host_snapshot("nowhere").host_version == 0


def test_list_machines_filters(store: StateStore) -> None:
    store.create_app(make_app("web"))
    store.create_app(make_app("api"))
    store.insert_machine(make_machine("m1"))
    store.insert_machine(make_machine("m2", app="api", ip="10.1.0.3"))
    store.update_machine("m1", 1, state=MachineState.DESTROYED)
    assert [m.id for m in store.list_machines(app_name="web")] == ["m1"]
    assert store.list_machines(app_name="web", include_destroyed=False) == []
    assert [m.id for m in store.list_machines(host_id="ams-1")] == ["m1", "m2"]
    store.insert_machine(make_machine("m3", host="iad-1"))
    assert [m.id for m in store.list_machines(host_ids=["iad-1", "sin-1"])] == ["m3"]
    assert store.list_machines(host_ids=[]) == []


def test_delete_app_removes_its_machines(store: StateStore) -> None:
    store.create_app(make_app())
    store.insert_machine(make_machine(), make_event(1))
    store.delete_app("web")
    store.delete_app("web")
    with pytest.raises(NotFoundError):
        store.get_machine("m1")
    assert store.list_events("m1") == []


def test_hosts_upsert_heartbeat_and_status(store: StateStore) -> None:
    store.upsert_host(make_host())
    moved = make_host().model_copy(update={"address": "10.0.0.9", "cpus": 8})
    again = store.upsert_host(moved)
    assert (again.address, again.cpus, again.registered_at) == ("10.0.0.9", 8, T0)
    store.set_host_status("ams-1", HostStatus.DOWN)
    assert store.get_host("ams-1").status is HostStatus.DOWN
    later = T0.replace(hour=5)
    beat = store.record_heartbeat("ams-1", later)
    assert (beat.status, beat.last_heartbeat) == (HostStatus.UP, later)
    with pytest.raises(NotFoundError, match="'ghost'"):
        store.record_heartbeat("ghost", later)


def test_logs_keep_only_the_tail(store: StateStore) -> None:
    store.append_logs("m1", [f"line {i}" for i in range(8)], keep=5)
    store.append_logs("m1", ["line 8"], keep=5)
    assert store.tail_logs("m1", 100) == [f"line {i}" for i in range(4, 9)]
    assert store.tail_logs("m1", 2) == ["line 7", "line 8"]


def test_meta_round_trip(store: StateStore) -> None:
    assert store.get_meta("k") is None
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2"


def test_concurrent_writers_never_lose_an_update(store: StateStore) -> None:
    store.create_app(make_app())
    store.insert_machine(make_machine())

    def bump_restart_count() -> None:
        for _ in range(10):
            while True:
                m = store.get_machine("m1")
                try:
                    store.update_machine("m1", m.revision, restart_count=m.restart_count + 1)
                    break
                except RevisionConflict:
                    continue

    threads = [threading.Thread(target=bump_restart_count) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert store.get_machine("m1").restart_count == 40
    assert store.resource_version() == 42


def test_sqlite_state_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    first.create_app(make_app())
    first.insert_machine(make_machine())
    first.close()
    second = SqliteStore(path)
    try:
        assert second.get_machine("m1").config.env == {"A": "1"}
        assert second.resource_version() == 2
    finally:
        second.close()
