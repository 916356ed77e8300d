"""Follow policies in the SQLite store (a mixin of ``SqliteStore``; table of migration 19)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import Connection, text

from ferry.errors import NotFoundError
from ferry.model.postgres_follow import FollowPolicy

__all__ = ["FollowPolicyRows", "delete_app_follow_policy"]

_UPSERT = text(
    "INSERT INTO postgres_follow (app_name, database, policy, updated_at)"
    " VALUES (:app, :database, :policy, :at) ON CONFLICT (app_name) DO UPDATE SET"
    " database = excluded.database, policy = excluded.policy, updated_at = excluded.updated_at"
)


def delete_app_follow_policy(conn: Connection, app_name: str) -> None:
    """Remove the app's policy (inside ``delete_app``'s transaction)."""
    conn.execute(text("DELETE FROM postgres_follow WHERE app_name = :app"), {"app": app_name})


class FollowPolicyRows:
    """The follow-policy methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def set_follow_policy(self, app_name: str, policy: FollowPolicy) -> None:
        values = {
            "app": app_name,
            "database": policy.database,
            "policy": policy.model_dump_json(),
            "at": time.time(),
        }
        with self._write() as conn:
            found = conn.execute(
                text("SELECT 1 FROM apps WHERE name = :app"), {"app": app_name}
            ).scalar()
            if found is None:
                raise NotFoundError(f"app {app_name!r} not found")
            conn.execute(_UPSERT, values)

    def get_follow_policy(self, app_name: str) -> FollowPolicy | None:
        query = text("SELECT policy FROM postgres_follow WHERE app_name = :app")
        with self._read() as conn:
            value = conn.execute(query, {"app": app_name}).scalar()
        return None if value is None else FollowPolicy.model_validate_json(value)

    def delete_follow_policy(self, app_name: str) -> bool:
        with self._write() as conn:
            result = conn.execute(
                text("DELETE FROM postgres_follow WHERE app_name = :app"), {"app": app_name}
            )
        return bool(result.rowcount)

    def list_follow_policies(self) -> dict[str, FollowPolicy]:
        query = text("SELECT app_name, policy FROM postgres_follow ORDER BY app_name")
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {row.app_name: FollowPolicy.model_validate_json(row.policy) for row in rows}
