"""Mesh nodes in the SQLite store (a mixin of ``SqliteStore``; table of migration 14)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, text

from ferry.errors import ConflictError
from ferry.model.mesh import MeshNodeKind
from ferry.net.sixpn import lowest_free
from ferry.store.mesh_base import MeshNodeRecord
from ferry.store.sqlite_rows import dt, ts

__all__ = ["MeshRows"]

_BUMP = text("UPDATE counters SET value = value + 1 WHERE name = 'mesh'")


class MeshRows:
    """The mesh methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def announce_mesh_node(
        self,
        node_id: str,
        *,
        kind: MeshNodeKind,
        region: str,
        public_key: str,
        endpoint: str,
        now: datetime,
    ) -> MeshNodeRecord:
        with self._write() as conn:
            rows = conn.execute(text("SELECT * FROM mesh_nodes")).all()
            for row in rows:
                if row.id == node_id:
                    continue
                if row.public_key == public_key:
                    raise ConflictError(
                        f"public key already belongs to mesh node {row.id!r}",
                        hint="each host makes its own key pair: do not copy a host's key "
                        "directory to another host",
                    )
                if row.endpoint == endpoint:
                    raise ConflictError(
                        f"endpoint {endpoint} is already mesh node {row.id!r}'s",
                        hint="announce the address and port this node itself listens on",
                    )
            mine = next((row for row in rows if row.id == node_id), None)
            if mine is not None and (mine.public_key, mine.endpoint, mine.region) == (
                public_key,
                endpoint,
                region,
            ):
                return _record(mine)
            number = mine.number if mine is not None else lowest_free(r.number for r in rows)
            conn.execute(
                text(
                    "INSERT INTO mesh_nodes (id, kind, region, number, public_key, endpoint, "
                    "updated_at) VALUES (:id, :kind, :region, :number, :key, :endpoint, :at) "
                    "ON CONFLICT (id) DO UPDATE SET kind = :kind, region = :region, "
                    "public_key = :key, endpoint = :endpoint, updated_at = :at"
                ),
                {
                    "id": node_id,
                    "kind": kind.value,
                    "region": region,
                    "number": number,
                    "key": public_key,
                    "endpoint": endpoint,
                    "at": ts(now),
                },
            )
            conn.execute(_BUMP)
        return MeshNodeRecord(node_id, kind, region, number, public_key, endpoint, now)

    def list_mesh_nodes(self) -> list[MeshNodeRecord]:
        with self._read() as conn:
            rows = conn.execute(text("SELECT * FROM mesh_nodes ORDER BY number")).all()
        return [_record(row) for row in rows]

    def mesh_version(self) -> int:
        with self._read() as conn:
            value = conn.execute(text("SELECT value FROM counters WHERE name = 'mesh'")).scalar()
        return int(value or 0)


def _record(row: Row[Any]) -> MeshNodeRecord:
    return MeshNodeRecord(
        id=row.id,
        kind=MeshNodeKind(row.kind),
        region=row.region,
        number=int(row.number),
        public_key=row.public_key,
        endpoint=row.endpoint,
        updated_at=dt(row.updated_at),
    )
