"""Migrations run by the numbers recorded: one merged in below the highest applied still runs."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from ferry.store import migrations


def test_a_migration_numbered_below_one_applied_still_runs_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = create_engine("sqlite://")
    first = [(1, ["CREATE TABLE a (x INTEGER)"]), (3, ["CREATE TABLE c (x INTEGER)"])]
    merged = [first[0], (2, ["CREATE TABLE b (x INTEGER)"]), first[1]]
    with engine.begin() as conn:
        monkeypatch.setattr(migrations, "MIGRATIONS", first)
        assert migrations.apply_migrations(conn) == 3
        monkeypatch.setattr(migrations, "MIGRATIONS", merged)
        assert migrations.apply_migrations(conn) == 3
        assert migrations.apply_migrations(conn) == 3  # nothing runs twice
        tables = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
        versions = list(conn.execute(text("SELECT version FROM schema_version")).scalars())
    assert {"a", "b", "c"} <= tables
    assert sorted(versions) == [1, 2, 3]
