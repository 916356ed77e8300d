"""The audit trail in the SQLite store (a mixin of ``SqliteStore``).

The ``audit`` table (migration 9) has triggers that abort any ``UPDATE`` or
``DELETE``: records are only ever inserted. ``id`` is ``AUTOINCREMENT`` so an
id is never reused, which keeps ``before=`` pagination stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, select

from ferry.model.audit import AuditEntry, AuditRecord
from ferry.store.schema import audit
from ferry.store.sqlite_engine import SqliteDatabase
from ferry.store.sqlite_rows import dt, ts

__all__ = ["AuditRows"]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        at=dt(row.at),
        org_slug=row.org_slug,
        actor=row.actor,
        token_id=row.token_id,
        method=row.method,
        route=row.route,
        target=json.loads(row.target) if row.target else {},
        source=row.source,
        status=row.status,
        outcome=row.outcome,
    )


_INSERT = (
    "INSERT INTO audit (at, org_slug, actor, token_id, method, route, target, source,"
    " status, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _values(entry: AuditEntry) -> tuple[Any, ...]:
    return (
        ts(entry.at),
        entry.org_slug,
        entry.actor,
        entry.token_id,
        entry.method,
        entry.route,
        json.dumps(entry.target, sort_keys=True),
        entry.source,
        entry.status,
        entry.outcome,
    )


class AuditRows:
    """The audit methods of ``StateStore``."""

    _db: SqliteDatabase
    _read: Callable[[], AbstractContextManager[Connection]]

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        # One per recorded API call: the plain connection skips SQLAlchemy's statement
        # building and pool checkout (see ``SqliteDatabase.raw_write``).
        with self._db.raw_write() as cursor:
            cursor.execute(_INSERT, _values(entry))
            new_id = cursor.lastrowid
        return AuditRecord(id=int(new_id or 0), **entry.model_dump())

    def try_append_audit(self, entry: AuditEntry) -> AuditRecord | None:
        with self._db.raw_write_if_free() as cursor:
            if cursor is None:
                return None
            cursor.execute(_INSERT, _values(entry))
            new_id = cursor.lastrowid
        return AuditRecord(id=int(new_id or 0), **entry.model_dump())

    def list_audit(
        self, org_slug: str | None, *, limit: int = 100, before: int | None = None
    ) -> list[AuditRecord]:
        query = select(audit).order_by(audit.c.id.desc()).limit(max(limit, 0))
        if org_slug is not None:
            query = query.where(audit.c.org_slug == org_slug)
        if before is not None:
            query = query.where(audit.c.id < before)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]
