"""Leases and config versions of machines in the SQLite store (a mixin of ``SqliteStore``).

Leases are written with compare-and-set on their ``version`` (the one the
caller read), so two clients racing for a machine cannot both win. Config
versions are written by the machine writes themselves (``record_version``,
inside their transaction), so the list never misses a change.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ferry.errors import RevisionConflict
from ferry.model.lease import MachineLease
from ferry.model.machine import MachineConfig, MachineVersion
from ferry.store.schema import leases, machine_versions

__all__ = ["LeaseRows", "record_version"]


def record_version(
    conn: Connection, machine_id: str, version: str, config: MachineConfig | str, at: float
) -> None:
    """Store ``config`` (a model or its JSON) as ``version`` of the machine; a later
    write of the same version (a metadata change keeps the instance) replaces its config."""
    encoded = config if isinstance(config, str) else config.model_dump_json()
    values = {"config": encoded, "created_at": at}
    statement = sqlite_insert(machine_versions).values(
        machine_id=machine_id, version=version, **values
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["machine_id", "version"], set_={"config": values["config"]}
        )
    )


class LeaseRows:
    """The lease and version methods of ``StateStore`` for ``SqliteStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def get_lease(self, machine_id: str) -> MachineLease | None:
        with self._read() as conn:
            row = conn.execute(select(leases).where(leases.c.machine_id == machine_id)).first()
        if row is None:
            return None
        return MachineLease(
            nonce=row.nonce,
            expires_at=row.expires_at,
            owner=row.owner,
            description=row.description,
            version=row.version,
        )

    def put_lease(self, machine_id: str, lease: MachineLease, *, expected: str | None) -> None:
        values: dict[str, Any] = lease.model_dump()
        try:
            with self._write() as conn:
                if expected is None:
                    conn.execute(leases.insert().values(machine_id=machine_id, **values))
                    return
                result = conn.execute(
                    leases.update()
                    .where(leases.c.machine_id == machine_id, leases.c.version == expected)
                    .values(values)
                )
                if result.rowcount == 0:
                    raise _raced(machine_id)
        except IntegrityError as exc:
            raise _raced(machine_id) from exc

    def delete_lease(self, machine_id: str, *, expected: str) -> None:
        with self._write() as conn:
            result = conn.execute(
                leases.delete().where(
                    leases.c.machine_id == machine_id, leases.c.version == expected
                )
            )
        if result.rowcount == 0:
            raise _raced(machine_id)

    def list_machine_versions(self, machine_id: str) -> list[MachineVersion]:
        query = (
            select(machine_versions)
            .where(machine_versions.c.machine_id == machine_id)
            .order_by(machine_versions.c.seq.desc())
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            MachineVersion(
                version=row.version, user_config=MachineConfig.model_validate_json(row.config)
            )
            for row in rows
        ]


def _raced(machine_id: str) -> RevisionConflict:
    return RevisionConflict(
        f"the lease of machine {machine_id} changed meanwhile",
        hint="read it again and retry",
    )
