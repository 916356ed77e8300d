"""Certificates and the ACME account in the SQLite store (a mixin of ``SqliteStore``).

Every write bumps the ``certificates`` counter in the same transaction, so an
edge long-polling on it sees each change exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ferry.errors import ConflictError, NotFoundError
from ferry.store.certs_base import AcmeAccountRow, CertRow, CertUpdate
from ferry.store.schema import acme_accounts, apps, certificates, counters
from ferry.store.secrets_base import SealedFields
from ferry.store.sqlite_rows import dt, ts

__all__ = ["CertRows", "delete_app_certificates"]

_COUNTER = "certificates"


def _sealed(row: Any, prefix: str) -> SealedFields | None:
    ciphertext = getattr(row, f"{prefix}ciphertext")
    if ciphertext is None:
        return None
    return (
        bytes(ciphertext),
        bytes(getattr(row, f"{prefix}nonce")),
        getattr(row, f"{prefix}key_id"),
        getattr(row, f"{prefix}digest"),
    )


def _cert(row: Any) -> CertRow:
    return CertRow(
        app_name=row.app_name,
        hostname=row.hostname,
        status=row.status,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
        chain_pem=bytes(row.chain_pem or b""),
        key=_sealed(row, "key_"),
        not_before=None if row.not_before is None else dt(row.not_before),
        not_after=None if row.not_after is None else dt(row.not_after),
        last_error=row.last_error,
        failures=row.failures,
        next_attempt=None if row.next_attempt is None else dt(row.next_attempt),
        challenges=json.loads(row.challenges),
        version=row.version,
    )


# The version handed out is the counter plus one: the counter starts at 0, and 0 is
# the "no snapshot yet, answer at once" of the edges' long poll (a version 0 handed
# out made every edge of a cluster without certificates poll in a tight loop).
_OFFSET = 1


def _bump(conn: Connection) -> int:
    conn.execute(
        sqlite_insert(counters)
        .values(name=_COUNTER, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": counters.c.value + 1})
    )
    found = conn.execute(select(counters.c.value).where(counters.c.name == _COUNTER)).scalar_one()
    return int(found) + _OFFSET


def _key_columns(prefix: str, key: SealedFields) -> dict[str, Any]:
    ciphertext, nonce, key_id, digest = key
    return {
        f"{prefix}ciphertext": ciphertext,
        f"{prefix}nonce": nonce,
        f"{prefix}key_id": key_id,
        f"{prefix}digest": digest,
    }


def delete_app_certificates(conn: Connection, app_name: str) -> None:
    """Remove the app's certificates (inside ``delete_app``'s transaction)."""
    if conn.execute(certificates.delete().where(certificates.c.app_name == app_name)).rowcount:
        _bump(conn)


class CertRows:
    """The certificate methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def add_certificate(self, app_name: str, hostname: str, *, at: datetime) -> CertRow:
        with self._write() as conn:
            if conn.execute(select(apps.c.name).where(apps.c.name == app_name)).first() is None:
                raise NotFoundError(
                    f"app {app_name!r} not found",
                    hint="list apps with `ferry apps list` or create it",
                )
            taken = conn.execute(
                select(certificates.c.app_name).where(certificates.c.hostname == hostname)
            ).first()
            if taken is not None:
                where = "this app" if taken.app_name == app_name else "another app"
                raise ConflictError(
                    f"{hostname} already has a certificate on {where}",
                    hint=f"see it with `ferry certs show {hostname} -a {app_name}`"
                    if taken.app_name == app_name
                    else "a host name can belong to one app only; remove it there first",
                )
            version = _bump(conn)
            conn.execute(
                certificates.insert().values(
                    app_name=app_name,
                    hostname=hostname,
                    status="pending",
                    created_at=ts(at),
                    updated_at=ts(at),
                    last_error="",
                    failures=0,
                    challenges="{}",
                    version=version,
                )
            )
            row = conn.execute(
                select(certificates).where(certificates.c.hostname == hostname)
            ).one()
            return _cert(row)

    def get_certificate(self, hostname: str) -> CertRow:
        with self._read() as conn:
            row = conn.execute(
                select(certificates).where(certificates.c.hostname == hostname)
            ).first()
        if row is None:
            raise NotFoundError(f"no certificate for {hostname}")
        return _cert(row)

    def list_certificates(self, app_name: str | None = None) -> list[CertRow]:
        query = select(certificates).order_by(certificates.c.hostname)
        if app_name is not None:
            query = query.where(certificates.c.app_name == app_name)
        with self._read() as conn:
            return [_cert(row) for row in conn.execute(query)]

    def update_certificate(self, hostname: str, change: CertUpdate, *, at: datetime) -> CertRow:
        values: dict[str, Any] = {"updated_at": ts(at)}
        for name in ("status", "chain_pem", "last_error", "failures"):
            value = getattr(change, name)
            if value is not None:
                values[name] = value
        for name in ("not_before", "not_after", "next_attempt"):
            moment = getattr(change, name)
            if moment is not None:
                values[name] = ts(moment)
        if change.clear_next_attempt:
            values["next_attempt"] = None
        if change.key is not None:
            values.update(_key_columns("key_", change.key))
        if change.challenges is not None:
            values["challenges"] = json.dumps(change.challenges, sort_keys=True)
        with self._write() as conn:
            values["version"] = _bump(conn)
            done = conn.execute(
                certificates.update().where(certificates.c.hostname == hostname).values(**values)
            )
            if not done.rowcount:
                raise NotFoundError(f"no certificate for {hostname}")
            row = conn.execute(
                select(certificates).where(certificates.c.hostname == hostname)
            ).one()
            return _cert(row)

    def remove_certificate(self, app_name: str, hostname: str) -> None:
        with self._write() as conn:
            done = conn.execute(
                certificates.delete().where(
                    certificates.c.app_name == app_name, certificates.c.hostname == hostname
                )
            )
            if not done.rowcount:
                raise NotFoundError(
                    f"app {app_name} has no certificate for {hostname}",
                    hint=f"see its certificates with `ferry certs list -a {app_name}`",
                )
            _bump(conn)

    def certificates_version(self) -> int:
        with self._read() as conn:
            found = conn.execute(
                select(counters.c.value).where(counters.c.name == _COUNTER)
            ).scalar()
        return int(found or 0) + _OFFSET

    def cert_key_ids(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._read() as conn:
            for table in (certificates, acme_accounts):
                query = (
                    select(table.c.key_key_id, func.count())
                    .where(table.c.key_key_id.is_not(None))
                    .group_by(table.c.key_key_id)
                )
                for key_id, count in conn.execute(query):
                    counts[key_id] = counts.get(key_id, 0) + int(count)
        return counts

    def reseal_cert_keys(self, reseal: Callable[[str, str, SealedFields], SealedFields]) -> int:
        done = 0
        with self._write() as conn:
            for row in conn.execute(select(certificates)).all():
                sealed = _sealed(row, "key_")
                if sealed is None:
                    continue
                fresh = reseal(f"certificate/{row.app_name}", row.hostname, sealed)
                conn.execute(
                    certificates.update()
                    .where(certificates.c.hostname == row.hostname)
                    .values(**_key_columns("key_", fresh))
                )
                done += 1
            for row in conn.execute(select(acme_accounts)).all():
                sealed = _sealed(row, "key_")
                assert sealed is not None
                fresh = reseal("acme-account", row.directory_url, sealed)
                conn.execute(
                    acme_accounts.update()
                    .where(acme_accounts.c.directory_url == row.directory_url)
                    .values(**_key_columns("key_", fresh))
                )
                done += 1
            if done:
                _bump(conn)
        return done

    def get_acme_account(self, directory_url: str) -> AcmeAccountRow | None:
        with self._read() as conn:
            row = conn.execute(
                select(acme_accounts).where(acme_accounts.c.directory_url == directory_url)
            ).first()
        if row is None:
            return None
        key = _sealed(row, "key_")
        assert key is not None
        return AcmeAccountRow(row.directory_url, key, row.uri, dt(row.created_at))

    def save_acme_account(self, account: AcmeAccountRow) -> None:
        values = {"uri": account.uri, **_key_columns("key_", account.key)}
        with self._write() as conn:
            conn.execute(
                sqlite_insert(acme_accounts)
                .values(
                    directory_url=account.directory_url,
                    created_at=ts(account.created_at),
                    **values,
                )
                .on_conflict_do_update(index_elements=["directory_url"], set_=values)
            )
