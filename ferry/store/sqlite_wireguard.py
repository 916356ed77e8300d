"""WireGuard peers in the SQLite store (a mixin of ``SqliteStore``; table of migration 16)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ferry.errors import ConflictError, NotFoundError
from ferry.net.sixpn import lowest_free
from ferry.store.sqlite_rows import dt, equal_filters, ts
from ferry.store.wireguard_base import WireGuardPeerRecord

__all__ = ["WireGuardPeerRows", "forget_wireguard_peers"]

# Hosts route a peer's /120 to its region's edge: the mesh's node list changes with it.
_BUMP_MESH = text("UPDATE counters SET value = value + 1 WHERE name = 'mesh'")


class WireGuardPeerRows:
    """The WireGuard peer methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def add_wireguard_peer(
        self, org_slug: str, name: str, *, region: str, public_key: str, now: datetime
    ) -> WireGuardPeerRecord:
        with self._write() as conn:
            rows = conn.execute(
                text("SELECT org_slug, name, number, public_key FROM wireguard_peers")
            ).all()
            for row in rows:
                if row.org_slug == org_slug and row.name == name:
                    raise ConflictError(
                        f"organization {org_slug!r} already has a WireGuard peer named {name!r}",
                        hint=f"pick another name, or `ferry wireguard remove {org_slug} {name}` "
                        "first",
                    )
                if row.public_key == public_key:
                    raise ConflictError(
                        "that public key is already another WireGuard peer's",
                        hint="make a new key pair for each peer (`ferry wireguard create` does)",
                    )
            number = lowest_free(r.number for r in rows if r.org_slug == org_slug)
            conn.execute(
                text(
                    "INSERT INTO wireguard_peers (org_slug, name, region, number, public_key, "
                    "created_at) VALUES (:org, :name, :region, :number, :key, :at)"
                ),
                {
                    "org": org_slug,
                    "name": name,
                    "region": region,
                    "number": number,
                    "key": public_key,
                    "at": ts(now),
                },
            )
            conn.execute(_BUMP_MESH)
        return WireGuardPeerRecord(org_slug, name, region, number, public_key, now)

    def list_wireguard_peers(
        self, org_slug: str | None = None, region: str | None = None
    ) -> list[WireGuardPeerRecord]:
        query, params = equal_filters(
            "SELECT * FROM wireguard_peers", org_slug=org_slug, region=region
        )
        with self._read() as conn:
            rows = conn.execute(text(query + " ORDER BY org_slug, name"), params).all()
        return [_record(row) for row in rows]

    def remove_wireguard_peer(self, org_slug: str, name: str) -> WireGuardPeerRecord:
        where = "WHERE org_slug = :org AND name = :name"
        params = {"org": org_slug, "name": name}
        with self._write() as conn:
            row = conn.execute(text(f"SELECT * FROM wireguard_peers {where}"), params).first()
            if row is None:
                raise NotFoundError(
                    f"organization {org_slug!r} has no WireGuard peer named {name!r}",
                    hint=f"see `ferry wireguard list {org_slug}`",
                )
            conn.execute(text(f"DELETE FROM wireguard_peers {where}"), params)
            conn.execute(_BUMP_MESH)
        return _record(row)


def forget_wireguard_peers(conn: Connection, org_slug: str) -> None:
    """Delete every peer of ``org_slug`` inside the caller's transaction (org deletion)."""
    gone = conn.execute(
        text("DELETE FROM wireguard_peers WHERE org_slug = :org"), {"org": org_slug}
    )
    if gone.rowcount:
        conn.execute(_BUMP_MESH)


def _record(row: Row[Any]) -> WireGuardPeerRecord:
    return WireGuardPeerRecord(
        org_slug=row.org_slug,
        name=row.name,
        region=row.region,
        number=int(row.number),
        public_key=row.public_key,
        created_at=dt(row.created_at),
    )
