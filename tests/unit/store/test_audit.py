"""The audit trail in the store: appended, read newest first, never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from ferry.model.audit import AuditEntry
from ferry.store import SqliteStore, StateStore
from ferry.store.audit_base import AuditStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(org: str | None, n: int, **fields: object) -> AuditEntry:
    values: dict[str, object] = {
        "at": T0 + timedelta(seconds=n),
        "org_slug": org,
        "actor": "user token 'alice' (alice@acme.test)",
        "token_id": "tok1",
        "method": "POST",
        "route": "/v1/apps/{app_name}/machines/{machine_id}/stop",
        "target": {"app_name": "rocket", "machine_id": f"m{n}"},
        "source": "10.0.0.9",
        "status": 200,
        "outcome": "ok",
    }
    values.update(fields)
    return AuditEntry.model_validate(values)


def test_records_come_back_newest_first_per_organization_with_every_field(
    store: StateStore,
) -> None:
    first = store.append_audit(_entry("acme", 1))
    store.append_audit(_entry("globex", 2))
    third = store.append_audit(_entry("acme", 3, status=404, outcome="app 'rocket' not found"))
    store.append_audit(_entry(None, 4, actor="unauthenticated", token_id=None))

    acme = store.list_audit("acme")
    assert [r.id for r in acme] == [third.id, first.id]
    assert acme[0] == third
    assert acme[0].target == {"app_name": "rocket", "machine_id": "m3"}
    assert acme[0].outcome == "app 'rocket' not found" and acme[0].status == 404
    assert acme[1].at == T0 + timedelta(seconds=1)
    assert len(store.list_audit(None)) == 4  # the operator's view: every record
    assert store.list_audit("initech") == []


def test_pages_follow_before_and_limit(store: StateStore) -> None:
    ids = [store.append_audit(_entry("acme", n)).id for n in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    page = store.list_audit("acme", limit=2)
    assert [r.id for r in page] == [ids[4], ids[3]]
    following = store.list_audit("acme", limit=2, before=page[-1].id)
    assert [r.id for r in following] == [ids[2], ids[1]]
    assert [r.id for r in store.list_audit("acme", before=ids[1])] == [ids[0]]


def test_the_table_refuses_updates_and_deletes_even_from_raw_sql(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        kept = store.append_audit(_entry("acme", 1))
        for statement in (
            "UPDATE audit SET outcome = 'nothing happened'",
            "UPDATE audit SET org_slug = NULL WHERE id = :id",
            "DELETE FROM audit WHERE id = :id",
            "DELETE FROM audit",
        ):
            with pytest.raises(DatabaseError, match="append-only"), store._write() as conn:
                conn.execute(text(statement), {"id": kept.id})
        assert store.list_audit("acme") == [kept]
        # Nor does anything else in the store remove records: the org and app go, history stays.
        store.create_org("acme", "Acme", at=T0)
        store.delete_org("acme")
        assert store.list_audit("acme") == [kept]
    finally:
        store.close()


def test_the_store_contract_has_no_way_to_change_a_record() -> None:
    methods = {name for name in vars(AuditStore) if not name.startswith("_")}
    assert methods == {"append_audit", "try_append_audit", "list_audit"}


def test_try_append_gives_up_at_once_while_another_write_is_under_way(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    try:
        with store._db.write():  # another thread's transaction, as far as the store knows
            assert store.try_append_audit(_entry("acme", 1)) is None
        assert store.list_audit("acme") == []
        written = store.try_append_audit(_entry("acme", 2))
        assert written is not None and store.list_audit("acme") == [written]
    finally:
        store.close()
