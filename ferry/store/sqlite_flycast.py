"""Flycast addresses in the SQLite store (a mixin of ``SqliteStore``; table of migration 17)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ferry.errors import NotFoundError
from ferry.net.flycast import MAX_FLYCAST, flycast_address
from ferry.net.sixpn import lowest_free
from ferry.store.flycast_base import FlycastRecord
from ferry.store.sqlite_rows import dt, equal_filters, ts

__all__ = ["FlycastRows", "delete_app_flycast_ips"]

# Hosts route an organization's Flycast /80 to their edge: the mesh changes with it.
_BUMP_MESH = text("UPDATE counters SET value = value + 1 WHERE name = 'mesh'")


class FlycastRows:
    """The Flycast methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def add_flycast_ip(
        self, app_name: str, org_slug: str, network: int, *, now: datetime
    ) -> FlycastRecord:
        with self._write() as conn:
            used = conn.execute(
                text("SELECT number FROM flycast_ips WHERE network = :network"),
                {"network": network},
            ).scalars()
            number = lowest_free(used, MAX_FLYCAST)
            address = str(flycast_address(network, number))
            conn.execute(
                text(
                    "INSERT INTO flycast_ips (address, app_name, org_slug, network, number, "
                    "created_at) VALUES (:address, :app, :org, :network, :number, :at)"
                ),
                {
                    "address": address,
                    "app": app_name,
                    "org": org_slug,
                    "network": network,
                    "number": number,
                    "at": ts(now),
                },
            )
            conn.execute(_BUMP_MESH)
        return FlycastRecord(address, app_name, org_slug, network, number, now)

    def list_flycast_ips(self, app_name: str | None = None) -> list[FlycastRecord]:
        query, params = equal_filters("SELECT * FROM flycast_ips", app_name=app_name)
        with self._read() as conn:
            rows = conn.execute(text(query + " ORDER BY network, number"), params).all()
        return [_record(row) for row in rows]

    def remove_flycast_ip(self, app_name: str, address: str) -> FlycastRecord:
        where = "WHERE app_name = :app AND address = :address"
        params = {"app": app_name, "address": address}
        with self._write() as conn:
            row = conn.execute(text(f"SELECT * FROM flycast_ips {where}"), params).first()
            if row is None:
                raise NotFoundError(
                    f"app {app_name!r} has no IP address {address}",
                    hint=f"see `ferry ips list -a {app_name}`",
                )
            conn.execute(text(f"DELETE FROM flycast_ips {where}"), params)
            conn.execute(_BUMP_MESH)
        return _record(row)


def delete_app_flycast_ips(conn: Connection, app_name: str) -> None:
    """Release every address of ``app_name`` inside the caller's transaction (app deletion)."""
    gone = conn.execute(text("DELETE FROM flycast_ips WHERE app_name = :app"), {"app": app_name})
    if gone.rowcount:
        conn.execute(_BUMP_MESH)


def _record(row: Row[Any]) -> FlycastRecord:
    return FlycastRecord(
        address=row.address,
        app_name=row.app_name,
        org_slug=row.org_slug,
        network=int(row.network),
        number=int(row.number),
        created_at=dt(row.created_at),
    )
