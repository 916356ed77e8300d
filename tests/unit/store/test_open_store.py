"""Choosing a backend by URL, and the schema migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ferry.errors import UnavailableError, ValidationError
from ferry.store import SqliteStore, open_store
from ferry.store.migrations import MIGRATIONS


def test_empty_url_opens_state_db_under_ferry_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_HOME", str(tmp_path))
    store = open_store("")
    store.close()
    assert (tmp_path / "server" / "state.db").exists()


def test_sqlite_url_with_absolute_path(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x/state.db")
    try:
        assert isinstance(store, SqliteStore)
        assert store.path == tmp_path / "x" / "state.db"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db/ferry", "PostgreSQL stores are not supported yet"),
        ("postgres://db/ferry", "PostgreSQL stores are not supported yet"),
        ("mysql://db", "unknown store URL scheme 'mysql'"),
        ("state.db", "has no scheme"),
        ("sqlite://", "names no database file"),
    ],
)
def test_unsupported_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        open_store(url)
    assert info.value.hint


def test_migrations_are_recorded_and_not_reapplied(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    SqliteStore(path).close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
        mode = conn.execute(text("PRAGMA journal_mode")).scalar()
    engine.dispose()
    assert versions == [number for number, _ in MIGRATIONS]
    assert mode == "wal"


def test_a_newer_schema_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version VALUES (999, 0)"))
    engine.dispose()
    with pytest.raises(UnavailableError, match="schema version 999") as info:
        SqliteStore(path)
    assert info.value.hint == "upgrade Ferry to open this database"
