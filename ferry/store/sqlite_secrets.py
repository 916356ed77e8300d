"""Sealed app secrets in the SQLite store (a mixin of ``SqliteStore``).

A change of several secrets is one transaction with one version bump, so a
machine starting meanwhile sees all of it or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ferry.errors import NotFoundError
from ferry.model.secrets import SecretsVersions, StoredSecret
from ferry.store.schema import apps, secret_versions, secrets
from ferry.store.secrets_base import SealedFields
from ferry.store.sqlite_rows import dt, ts

__all__ = ["SecretRows", "delete_app_secrets"]


def _stored(row: Any) -> StoredSecret:
    return StoredSecret(
        app_name=row.app_name,
        name=row.name,
        ciphertext=bytes(row.ciphertext),
        nonce=bytes(row.nonce),
        key_id=row.key_id,
        digest=row.digest,
        version=row.version,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
    )


def _versions(conn: Connection, app_name: str) -> SecretsVersions:
    row = conn.execute(
        select(secret_versions).where(secret_versions.c.app_name == app_name)
    ).first()
    return SecretsVersions() if row is None else SecretsVersions(row.version, row.deployed)


def delete_app_secrets(conn: Connection, app_name: str) -> None:
    """Remove the app's secrets and counter (inside ``delete_app``'s transaction)."""
    conn.execute(secrets.delete().where(secrets.c.app_name == app_name))
    conn.execute(secret_versions.delete().where(secret_versions.c.app_name == app_name))


class SecretRows:
    """The secrets methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def list_secrets(self, app_name: str) -> tuple[SecretsVersions, list[StoredSecret]]:
        query = select(secrets).where(secrets.c.app_name == app_name).order_by(secrets.c.name)
        with self._read() as conn:
            return _versions(conn, app_name), [_stored(row) for row in conn.execute(query)]

    def change_secrets(
        self,
        app_name: str,
        upserts: Mapping[str, SealedFields],
        removals: Collection[str],
        *,
        at: datetime,
    ) -> SecretsVersions:
        with self._write() as conn:
            if conn.execute(select(apps.c.name).where(apps.c.name == app_name)).first() is None:
                raise NotFoundError(
                    f"app {app_name!r} not found",
                    hint="list apps with `ferry apps list` or create it",
                )
            if removals:
                present = set(
                    conn.execute(
                        select(secrets.c.name).where(
                            secrets.c.app_name == app_name, secrets.c.name.in_(sorted(removals))
                        )
                    ).scalars()
                )
                missing = sorted(set(removals) - present)
                if missing:
                    raise NotFoundError(
                        f"app {app_name} has no secret named {', '.join(missing)}",
                        hint=f"see its secrets with `ferry secrets list -a {app_name}`",
                    )
            before = _versions(conn, app_name)
            version = before.version + 1
            conn.execute(
                sqlite_insert(secret_versions)
                .values(app_name=app_name, version=version, deployed=before.deployed)
                .on_conflict_do_update(index_elements=["app_name"], set_={"version": version})
            )
            if removals:
                conn.execute(
                    secrets.delete().where(
                        secrets.c.app_name == app_name, secrets.c.name.in_(sorted(removals))
                    )
                )
            for name, (ciphertext, nonce, key_id, digest) in sorted(upserts.items()):
                values = {
                    "ciphertext": ciphertext,
                    "nonce": nonce,
                    "key_id": key_id,
                    "digest": digest,
                    "version": version,
                    "updated_at": ts(at),
                }
                conn.execute(
                    sqlite_insert(secrets)
                    .values(app_name=app_name, name=name, created_at=ts(at), **values)
                    .on_conflict_do_update(index_elements=["app_name", "name"], set_=values)
                )
            return SecretsVersions(version, before.deployed)

    def mark_secrets_deployed(self, app_name: str, version: int) -> SecretsVersions:
        with self._write() as conn:
            before = _versions(conn, app_name)
            if version > before.deployed and before.version > 0:
                conn.execute(
                    secret_versions.update()
                    .where(secret_versions.c.app_name == app_name)
                    .values(deployed=min(version, before.version))
                )
            return _versions(conn, app_name)

    def secret_key_ids(self) -> dict[str, int]:
        query = select(secrets.c.key_id, func.count()).group_by(secrets.c.key_id)
        with self._read() as conn:
            return {key_id: int(count) for key_id, count in conn.execute(query)}

    def reseal_secrets(self, reseal: Callable[[StoredSecret], SealedFields]) -> int:
        with self._write() as conn:
            rows = [_stored(row) for row in conn.execute(select(secrets))]
            for row in rows:
                ciphertext, nonce, key_id, digest = reseal(row)
                conn.execute(
                    secrets.update()
                    .where(secrets.c.app_name == row.app_name, secrets.c.name == row.name)
                    .values(ciphertext=ciphertext, nonce=nonce, key_id=key_id, digest=digest)
                )
            return len(rows)
