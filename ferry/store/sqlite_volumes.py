"""Volumes and snapshots in the SQLite store (a mixin of ``SqliteStore``; migration 18)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from ferry.errors import ConflictError, NotFoundError, RevisionConflict
from ferry.model.volume import Volume, VolumeSnapshot, VolumeState
from ferry.store.sqlite_rows import equal_filters, ts

__all__ = ["VolumeRows"]

_UNUSABLE = (VolumeState.PENDING_DESTROY, VolumeState.DESTROYED, VolumeState.FAILED)


def _holder(conn: Connection, machine_id: str | None) -> str | None:
    """``machine_id`` if that machine exists and is not destroyed, else ``None``."""
    if machine_id is None:
        return None
    state = conn.execute(
        text("SELECT state FROM machines WHERE id = :id"), {"id": machine_id}
    ).scalar()
    return machine_id if state is not None and state != "destroyed" else None


def _volume(conn: Connection, row: Any) -> Volume:
    volume = Volume.model_validate_json(row.doc)
    holder = _holder(conn, row.attached_machine_id)
    return volume.model_copy(
        update={
            "attached_machine_id": holder,
            "attached_alloc_id": holder,
            "revision": row.revision,
        }
    )


class VolumeRows:
    """The volume methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def insert_volume(self, volume: Volume) -> Volume:
        stored = volume.model_copy(update={"revision": 1})
        with self._write() as conn:
            if conn.execute(
                text("SELECT 1 FROM volumes WHERE id = :id"), {"id": volume.id}
            ).first():
                raise ConflictError(f"volume {volume.id} exists")
            conn.execute(
                text(
                    "INSERT INTO volumes (id, app_name, host_id, state, attached_machine_id, doc, "
                    "revision) VALUES (:id, :app, :host, :state, :machine, :doc, 1)"
                ),
                {
                    "id": volume.id,
                    "app": volume.app_name,
                    "host": volume.host_id,
                    "state": volume.state.value,
                    "machine": volume.attached_machine_id,
                    "doc": stored.model_dump_json(),
                },
            )
        return stored

    def get_volume(self, volume_id: str, app_name: str | None = None) -> Volume:
        with self._read() as conn:
            row = conn.execute(
                text("SELECT * FROM volumes WHERE id = :id"), {"id": volume_id}
            ).first()
            if row is None or (app_name is not None and row.app_name != app_name):
                where = f" in app {app_name!r}" if app_name else ""
                raise NotFoundError(
                    f"volume {volume_id!r} not found{where}", hint="see `ferry volumes list`"
                )
            return _volume(conn, row)

    def list_volumes(
        self,
        *,
        app_name: str | None = None,
        host_id: str | None = None,
        include_destroyed: bool = False,
    ) -> list[Volume]:
        query, params = equal_filters("SELECT * FROM volumes", app_name=app_name, host_id=host_id)
        if not include_destroyed:
            query += " AND state != 'destroyed'"
        with self._read() as conn:
            rows = conn.execute(text(query), params).all()
            volumes = [_volume(conn, row) for row in rows]
        return sorted(volumes, key=lambda v: (v.created_at, v.id))

    def update_volume(self, volume: Volume) -> Volume:
        stored = volume.model_copy(update={"revision": volume.revision + 1})
        with self._write() as conn:
            if volume.state is VolumeState.PENDING_DESTROY:
                # Checked in the write that destroys: a claim cannot slip in between.
                attached = conn.execute(
                    text("SELECT attached_machine_id FROM volumes WHERE id = :id"),
                    {"id": volume.id},
                ).scalar()
                holder = _holder(conn, attached)
                if holder is not None:
                    raise ConflictError(
                        f"volume {volume.id} is in use by machine {holder}",
                        hint=f"destroy machine {holder} first",
                    )
            done = conn.execute(
                text(
                    "UPDATE volumes SET state = :state, doc = :doc, revision = :next "
                    "WHERE id = :id AND revision = :rev"
                ),
                {
                    "id": volume.id,
                    "state": volume.state.value,
                    "doc": stored.model_dump_json(exclude={"attached_machine_id"}),
                    "next": stored.revision,
                    "rev": volume.revision,
                },
            )
            if done.rowcount == 0:
                found = conn.execute(
                    text("SELECT 1 FROM volumes WHERE id = :id"), {"id": volume.id}
                ).first()
                if found is None:
                    raise NotFoundError(f"volume {volume.id!r} not found")
                raise RevisionConflict(
                    f"volume {volume.id} changed since it was read", hint="retry the request"
                )
            row = conn.execute(text("SELECT * FROM volumes WHERE id = :id"), {"id": volume.id})
            return _volume(conn, row.one())

    def claim_volume(self, volume_id: str, app_name: str, machine_id: str) -> Volume:
        with self._write() as conn:
            row = conn.execute(
                text("SELECT * FROM volumes WHERE id = :id"), {"id": volume_id}
            ).first()
            if row is None or row.app_name != app_name:
                raise NotFoundError(
                    f"volume {volume_id!r} not found in app {app_name!r}",
                    hint=f"see `ferry volumes list -a {app_name}`",
                )
            if VolumeState(row.state) in _UNUSABLE:
                raise ConflictError(
                    f"volume {volume_id} is {row.state} and cannot be mounted",
                    hint="create a new volume",
                )
            holder = _holder(conn, row.attached_machine_id)
            if holder is not None and holder != machine_id:
                raise ConflictError(
                    f"volume {volume_id} is in use by machine {holder}: a volume is mounted "
                    "by one machine at a time",
                    hint="destroy that machine first, or create another volume",
                )
            conn.execute(
                text("UPDATE volumes SET attached_machine_id = :m WHERE id = :id"),
                {"m": machine_id, "id": volume_id},
            )
            claimed = conn.execute(text("SELECT * FROM volumes WHERE id = :id"), {"id": volume_id})
            return _volume(conn, claimed.one())

    def release_volume(self, volume_id: str, machine_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                text(
                    "UPDATE volumes SET attached_machine_id = NULL "
                    "WHERE id = :id AND attached_machine_id = :m"
                ),
                {"id": volume_id, "m": machine_id},
            )

    def insert_snapshot(self, snapshot: VolumeSnapshot, host_id: str) -> VolumeSnapshot:
        with self._write() as conn:
            conn.execute(
                text(
                    "INSERT INTO volume_snapshots (id, volume_id, host_id, status, doc) "
                    "VALUES (:id, :volume, :host, :status, :doc)"
                ),
                {
                    "id": snapshot.id,
                    "volume": snapshot.volume_id,
                    "host": host_id,
                    "status": snapshot.status.value,
                    "doc": snapshot.model_dump_json(),
                },
            )
        return snapshot

    def list_snapshots(
        self, *, volume_id: str | None = None, host_id: str | None = None
    ) -> list[VolumeSnapshot]:
        query, params = equal_filters(
            "SELECT doc FROM volume_snapshots", volume_id=volume_id, host_id=host_id
        )
        with self._read() as conn:
            docs = conn.execute(text(query), params).scalars().all()
        snapshots = [VolumeSnapshot.model_validate_json(doc) for doc in docs]
        return sorted(snapshots, key=lambda s: (s.created_at, s.id))

    def get_snapshot(self, snapshot_id: str) -> tuple[VolumeSnapshot, str]:
        with self._read() as conn:
            row = conn.execute(
                text("SELECT doc, host_id FROM volume_snapshots WHERE id = :id"),
                {"id": snapshot_id},
            ).first()
        if row is None:
            raise NotFoundError(
                f"snapshot {snapshot_id!r} not found",
                hint="see `ferry volumes snapshots list VOLUME_ID`",
            )
        return VolumeSnapshot.model_validate_json(row.doc), row.host_id

    def update_snapshot(self, snapshot: VolumeSnapshot) -> VolumeSnapshot:
        with self._write() as conn:
            done = conn.execute(
                text("UPDATE volume_snapshots SET status = :status, doc = :doc WHERE id = :id"),
                {
                    "id": snapshot.id,
                    "status": snapshot.status.value,
                    "doc": snapshot.model_dump_json(),
                },
            )
            if done.rowcount == 0:
                raise NotFoundError(f"snapshot {snapshot.id!r} not found")
        return snapshot

    def set_volume_capacity(
        self, host_id: str, capacity_bytes: int, now: datetime, *, online_resize: bool = False
    ) -> None:
        with self._write() as conn:
            conn.execute(
                text(
                    "INSERT INTO volume_hosts (host_id, capacity_bytes, online_resize, "
                    "reported_at) VALUES (:host, :bytes, :online, :at) ON CONFLICT (host_id) "
                    "DO UPDATE SET capacity_bytes = excluded.capacity_bytes, "
                    "online_resize = excluded.online_resize, reported_at = excluded.reported_at"
                ),
                {"host": host_id, "bytes": capacity_bytes, "online": online_resize, "at": ts(now)},
            )

    def volume_online_resize(self, host_id: str) -> bool:
        with self._read() as conn:
            found = conn.execute(
                text("SELECT online_resize FROM volume_hosts WHERE host_id = :host"),
                {"host": host_id},
            ).scalar()
        return bool(found)

    def volume_capacities(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(text("SELECT host_id, capacity_bytes FROM volume_hosts")).all()
        return {row.host_id: int(row.capacity_bytes) for row in rows}
