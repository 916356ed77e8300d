"""What placement reads from the SQLite store (a mixin of ``SqliteStore``).

The control plane keeps the hosts' capacities in memory
(``ferry.server.capacity_view``) and proves it current on every insert:
``insert_machine(expected=…)`` writes only if the ``resource_version``
counter (bumped by every machine write) and the ``placement_epoch`` counter
(bumped by ``bump_epoch`` for the writes a machine delta cannot express)
still hold what the decision was based on. Both checks run inside the
insert's ``BEGIN IMMEDIATE`` transaction, so no write can slip in between,
whichever process or thread makes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, select

from ferry.model import Host, Machine
from ferry.store.base import PlacementVersions, StalePlacement
from ferry.store.schema import counters, hosts, machines

__all__ = ["PlacementRows", "StaleRows", "bump_epoch", "read_versions", "write_new_machine"]

_VERSIONS = select(counters.c.name, counters.c.value).where(
    counters.c.name.in_(["resource_version", "placement_epoch"])
)


def read_versions(conn: Connection) -> PlacementVersions:
    """Both counters, read in the caller's transaction."""
    found = {row.name: int(row.value) for row in conn.execute(_VERSIONS)}
    return PlacementVersions(found["resource_version"], found["placement_epoch"])


def bump_epoch(conn: Connection) -> None:
    """Tell every placement view to rebuild: called, in their transaction, by the
    writes a machine delta cannot express."""
    conn.execute(
        counters.update()
        .where(counters.c.name == "placement_epoch")
        .values(value=counters.c.value + 1)
    )


_BUMP_SQL = "UPDATE counters SET value = value + 1 WHERE name = 'resource_version' RETURNING value"
_VERSIONS_SQL = (
    "SELECT name, value FROM counters WHERE name IN ('resource_version', 'placement_epoch')"
)


@cache
def _insert_sql(table: str, columns: tuple[str, ...], upsert: str = "") -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}){upsert}"


def _insert(cursor: sqlite3.Cursor, table: str, row: Mapping[str, Any], upsert: str = "") -> None:
    columns = tuple(row)
    cursor.execute(_insert_sql(table, columns, upsert), [row[c] for c in columns])


def write_new_machine(
    cursor: sqlite3.Cursor,
    machine: Mapping[str, Any],
    version: Mapping[str, Any],
    event: Mapping[str, Any] | None,
    expected: PlacementVersions | None,
) -> int:
    """Insert a machine row, its config version and its event in the caller's write
    transaction (``SqliteDatabase.raw_write``); return the machine's resource version.

    Raises ``StaleRows`` when ``expected`` is stale (before writing anything)
    and ``sqlite3.IntegrityError`` for a duplicate; the caller's transaction
    then rolls back.
    """
    if expected is not None:
        found = dict(cursor.execute(_VERSIONS_SQL).fetchall())
        current = PlacementVersions(int(found["resource_version"]), int(found["placement_epoch"]))
        if current != expected:
            rows = None
            if current.epoch == expected.epoch:  # what changed, while we are here
                cursor.execute(_CHANGED_SQL, (expected.resource_version,))
                names = [d[0] for d in cursor.description]
                rows = [_Row(zip(names, values, strict=True)) for values in cursor.fetchall()]
            raise StaleRows(current, expected, rows)
    resource_version = int(cursor.execute(_BUMP_SQL).fetchone()[0])
    _insert(cursor, "machines", {**machine, "resource_version": resource_version})
    # A later write of the same version replaces its config (as record_version).
    upsert = " ON CONFLICT (machine_id, version) DO UPDATE SET config = excluded.config"
    _insert(cursor, "machine_versions", version, upsert)
    if event is not None:
        _insert(cursor, "events", event)
    return resource_version


_CHANGED_SQL = "SELECT * FROM machines WHERE resource_version > ? ORDER BY resource_version"


class _Row(dict[str, Any]):
    """A machines row read on the raw cursor, with attribute access like SQLAlchemy's."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class StaleRows(Exception):
    """``write_new_machine`` found the store moved on: its versions now, and the raw
    machine rows written since (``None`` when the epoch moved)."""

    def __init__(
        self, current: PlacementVersions, expected: PlacementVersions, rows: list[Any] | None
    ) -> None:
        super().__init__(
            f"the store moved on while placing (versions {current.resource_version}/"
            f"{current.epoch}, not {expected.resource_version}/{expected.epoch})"
        )
        self.current = current
        self.rows = rows

    def to_conflict(self, parse: Callable[[Any], Machine]) -> StalePlacement:
        """The ``StalePlacement`` the store raises, with the rows parsed by ``parse``."""
        changed = None if self.rows is None else [parse(row) for row in self.rows]
        return StalePlacement(str(self), self.current, changed)


class PlacementRows:
    """``placement_state`` and ``machines_since`` of ``StateStore`` for ``SqliteStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _machine: Callable[[Row[Any]], Machine]
    _host: Callable[[Row[Any]], Host]

    def placement_state(self) -> tuple[PlacementVersions, list[Host], list[Machine]]:
        with self._read() as conn:
            versions = read_versions(conn)
            host_rows = conn.execute(select(hosts).order_by(hosts.c.id)).all()
            machine_rows = conn.execute(
                select(machines)
                .where(machines.c.state != "destroyed")
                .order_by(machines.c.created_at, machines.c.id)
            ).all()
        return (
            versions,
            [self._host(row) for row in host_rows],
            [self._machine(row) for row in machine_rows],
        )

    def machines_since(self, resource_version: int) -> tuple[PlacementVersions, list[Machine]]:
        with self._read() as conn:
            versions = read_versions(conn)
            rows = conn.execute(
                select(machines)
                .where(machines.c.resource_version > resource_version)
                .order_by(machines.c.resource_version)
            ).all()
        return versions, [self._machine(row) for row in rows]
