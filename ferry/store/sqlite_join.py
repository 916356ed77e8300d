"""Join tokens in the SQLite store (a mixin of ``SqliteStore``; table of migration 15)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ferry.errors import NotFoundError
from ferry.model.join import JoinToken
from ferry.store.sqlite_rows import dt, ts

__all__ = ["JoinTokenRows"]


class JoinTokenRows:
    """The join-token methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def insert_join_token(self, token: JoinToken, digest: str) -> None:
        with self._write() as conn:
            conn.execute(
                text(
                    "INSERT INTO join_tokens (id, name, region, digest, created_at, expires_at) "
                    "VALUES (:id, :name, :region, :digest, :created, :expires)"
                ),
                {
                    "id": token.id,
                    "name": token.name,
                    "region": token.region,
                    "digest": digest,
                    "created": ts(token.created_at),
                    "expires": ts(token.expires_at),
                },
            )

    def get_join_token(self, token_id: str) -> tuple[JoinToken, str]:
        with self._read() as conn:
            row = conn.execute(
                text("SELECT * FROM join_tokens WHERE id = :id"), {"id": token_id}
            ).first()
        if row is None:
            raise NotFoundError(f"join token {token_id} not found")
        return _token(row), str(row.digest)

    def spend_join_token(self, token_id: str, host_id: str, at: datetime) -> bool:
        with self._write() as conn:
            result = conn.execute(
                text(
                    "UPDATE join_tokens SET used_at = :at, used_by = :host "
                    "WHERE id = :id AND used_at IS NULL"
                ),
                {"id": token_id, "host": host_id, "at": ts(at)},
            )
        return bool(result.rowcount)

    def list_join_tokens(self) -> list[JoinToken]:
        with self._read() as conn:
            rows = conn.execute(
                text("SELECT * FROM join_tokens ORDER BY created_at DESC, id")
            ).all()
        return [_token(row) for row in rows]

    def delete_join_token(self, token_id: str) -> None:
        with self._write() as conn:
            result = conn.execute(text("DELETE FROM join_tokens WHERE id = :id"), {"id": token_id})
        if not result.rowcount:
            raise NotFoundError(f"join token {token_id} not found")


def _token(row: Row[Any]) -> JoinToken:
    return JoinToken(
        id=row.id,
        name=row.name,
        region=row.region,
        created_at=dt(row.created_at),
        expires_at=dt(row.expires_at),
        used_at=dt(row.used_at) if row.used_at is not None else None,
        used_by=row.used_by,
    )
