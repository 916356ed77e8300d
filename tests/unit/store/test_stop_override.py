"""A machine's pending stop request is stored, and older databases gain its column."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from ferry.model import DesiredState
from ferry.model.machine import StopOverride
from ferry.store import SqliteStore, StateStore
from ferry.store.migrations import MIGRATIONS, current_version

from .factories import T0, make_app, make_machine


def test_stop_override_round_trips_and_can_be_cleared(store: StateStore) -> None:
    store.create_app(make_app())
    override = StopOverride(signal="SIGKILL", timeout="1s")
    inserted = store.insert_machine(make_machine().model_copy(update={"stop_override": override}))
    assert inserted.stop_override == override
    stopped = store.update_machine(
        "m1",
        inserted.revision,
        desired_state=DesiredState.STOPPED,
        stop_override=StopOverride(timeout="2s"),
    )
    assert store.get_machine("m1").stop_override == StopOverride(timeout="2s")
    store.update_machine("m1", stopped.revision, stop_override=None)
    assert store.get_machine("m1").stop_override is None
    assert store.host_snapshot("ams-1").machines[0].stop_override is None


def test_stop_override_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    first.create_app(make_app())
    m = first.insert_machine(make_machine())
    first.update_machine(m.id, m.revision, stop_override=StopOverride(signal="SIGKILL"))
    first.close()
    second = SqliteStore(path)
    try:
        assert second.get_machine("m1").effective_stop.signal == "SIGKILL"
    finally:
        second.close()


def _database_at_version(path: Path, version: int) -> None:
    """A database as a Ferry that knew migrations up to ``version`` left it, with one machine."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        current_version(conn)
        for number, statements in MIGRATIONS:
            if number > version:
                break
            for statement in statements:
                conn.execute(text(statement))
            conn.execute(text("INSERT INTO schema_version VALUES (:v, 0)"), {"v": number})
        conn.execute(
            text(
                "INSERT INTO apps (name, id, org_slug, status, network, created_at) "
                "VALUES ('web', 'id-web', 'personal', 'deployed', 'default', :t)"
            ),
            {"t": T0.timestamp()},
        )
        old = make_machine()
        conn.execute(
            text(
                "INSERT INTO machines (id, name, app_name, region, host_id, instance_id, "
                "private_ip, config, image_ref, desired_state, state, revision, "
                "resource_version, created_at, updated_at) VALUES (:id, :name, 'web', 'ams', "
                "'ams-1', :instance, :ip, :config, '{}', 'started', 'started', 1, 2, :t, :t)"
            ),
            {
                "id": old.id,
                "name": old.name,
                "instance": old.instance_id,
                "ip": old.host_ip,
                "config": old.config.model_dump_json(),
                "t": T0.timestamp(),
            },
        )
        # As a store's insert leaves it: the counter at the row's resource version.
        conn.execute(text("UPDATE counters SET value = 2 WHERE name = 'resource_version'"))
    engine.dispose()


def test_a_database_from_before_stop_override_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _database_at_version(path, 2)
    store = SqliteStore(path)
    try:
        old = store.get_machine("m1")
        assert (old.stop_override, old.config.env) == (None, {"A": "1"})
        assert old.effective_stop == old.config.effective_stop
        override = StopOverride(signal="SIGKILL", timeout="1s")
        store.update_machine("m1", old.revision, stop_override=override)
        assert store.get_machine("m1").stop_override == override
    finally:
        store.close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
        stored = conn.execute(text("SELECT stop_override FROM machines")).scalar_one()
    engine.dispose()
    assert versions == [number for number, _ in MIGRATIONS]
    assert json.loads(stored) == {"signal": "SIGKILL", "timeout": "1s"}
