"""The SQLite backend of ``StateStore``: SQLAlchemy Core over ``SqliteDatabase``.

Durability and concurrency (WAL, serialized ``BEGIN IMMEDIATE`` writes) are
described in ``sqlite_engine.py``; rows <-> models are in ``sqlite_rows.py``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, func, select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from ferry.errors import ConflictError, NotFoundError, RevisionConflict
from ferry.model import (
    App,
    Host,
    HostStatus,
    Machine,
    MachineConfig,
    MachineEvent,
    Organization,
)
from ferry.model.autoscale import AutoscalePolicy
from ferry.net.sixpn import MAX_HOST, lowest_free
from ferry.store.base import HostSnapshot, PlacementVersions
from ferry.store.schema import (
    apps,
    autoscale_policies,
    counters,
    events,
    hosts,
    leases,
    logs,
    machine_versions,
    machines,
    meta,
    orgs,
)
from ferry.store.sqlite_access import AccessRows
from ferry.store.sqlite_audit import AuditRows
from ferry.store.sqlite_certs import CertRows, delete_app_certificates
from ferry.store.sqlite_engine import SqliteDatabase
from ferry.store.sqlite_flycast import FlycastRows, delete_app_flycast_ips
from ferry.store.sqlite_join import JoinTokenRows
from ferry.store.sqlite_leases import LeaseRows, record_version
from ferry.store.sqlite_mesh import MeshRows
from ferry.store.sqlite_pg_follow import FollowPolicyRows, delete_app_follow_policy
from ferry.store.sqlite_placement import (
    PlacementRows,
    StaleRows,
    bump_epoch,
    write_new_machine,
)
from ferry.store.sqlite_releases import SqliteReleases
from ferry.store.sqlite_rows import (
    MUTABLE_FIELDS,
    app_from_row,
    dt,
    encode_machine_changes,
    event_from_row,
    event_values,
    host_from_row,
    host_values,
    machine_from_row,
    ts,
)
from ferry.store.sqlite_secrets import SecretRows, delete_app_secrets
from ferry.store.sqlite_volumes import VolumeRows
from ferry.store.sqlite_waf import WafEventRows, delete_app_waf_events
from ferry.store.sqlite_wireguard import WireGuardPeerRows

__all__ = ["SqliteStore"]

_LIVE = machines.c.state != "destroyed"
_PARSED_CACHE_SIZE = 50_000


class SqliteStore(
    SqliteReleases,
    LeaseRows,
    PlacementRows,
    AccessRows,
    SecretRows,
    AuditRows,
    CertRows,
    WafEventRows,
    MeshRows,
    JoinTokenRows,
    WireGuardPeerRows,
    VolumeRows,
    FlycastRows,
    FollowPolicyRows,
):
    """``StateStore`` on one SQLite file (guarantees: ``sqlite_engine.py``).

    Opening creates the file and its directory if needed and applies pending
    migrations. Raises ``UnavailableError`` if the file cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path)
        self.path = path
        self._read = self._db.read
        self._write = self._db.write
        self._parsed: dict[tuple[str, int], Machine] = {}
        self._parsed_hosts: dict[tuple[Any, ...], Host] = {}
        self._parsed_lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    # -- organizations and apps ---------------------------------------------
    def get_org(self, slug: str) -> Organization:
        with self._read() as conn:
            row = conn.execute(select(orgs).where(orgs.c.slug == slug)).first()
        if row is None:
            raise NotFoundError(f"organization {slug!r} not found", hint="use org_slug 'personal'")
        return Organization(name=row.name, slug=row.slug, sixpn_network=row.sixpn_network)

    def _app_query(self) -> Any:
        count = (
            select(func.count())
            .where(machines.c.app_name == apps.c.name, _LIVE)
            .scalar_subquery()
            .label("machine_count")
        )
        return select(
            apps,
            orgs.c.name.label("org_name"),
            orgs.c.sixpn_network.label("org_sixpn_network"),
            count,
        ).join(orgs, orgs.c.slug == apps.c.org_slug)

    def create_app(self, app: App) -> App:
        self.get_org(app.organization.slug)
        try:
            with self._write() as conn:
                conn.execute(
                    apps.insert().values(
                        name=app.name,
                        id=app.id,
                        org_slug=app.organization.slug,
                        status=app.status,
                        network=app.network,
                        created_at=ts(app.created_at),
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(
                f"app name {app.name!r} is already taken", hint="choose another name"
            ) from exc
        return self.get_app(app.name)

    def get_app(self, name: str) -> App:
        with self._read() as conn:
            row = conn.execute(self._app_query().where(apps.c.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"app {name!r} not found", hint="list apps with `ferry apps list` or create it"
            )
        return app_from_row(row)

    def list_apps(self, org_slug: str | None = None) -> list[App]:
        query = self._app_query().order_by(apps.c.name)
        if org_slug is not None:
            query = query.where(apps.c.org_slug == org_slug)
        with self._read() as conn:
            return [app_from_row(row) for row in conn.execute(query)]

    def set_app_status(self, name: str, status: str) -> None:
        with self._write() as conn:
            result = conn.execute(apps.update().where(apps.c.name == name).values(status=status))
            bump_epoch(conn)
        if result.rowcount == 0:
            raise NotFoundError(f"app {name!r} not found")

    def delete_app(self, name: str) -> None:
        ids = select(machines.c.id).where(machines.c.app_name == name)
        with self._write() as conn:
            conn.execute(events.delete().where(events.c.machine_id.in_(ids)))
            conn.execute(logs.delete().where(logs.c.machine_id.in_(ids)))
            conn.execute(leases.delete().where(leases.c.machine_id.in_(ids)))
            conn.execute(machine_versions.delete().where(machine_versions.c.machine_id.in_(ids)))
            conn.execute(machines.delete().where(machines.c.app_name == name))
            conn.execute(autoscale_policies.delete().where(autoscale_policies.c.app_name == name))
            self._delete_releases(conn, name)
            delete_app_secrets(conn, name)
            delete_app_waf_events(conn, name)
            delete_app_certificates(conn, name)
            delete_app_flycast_ips(conn, name)
            delete_app_follow_policy(conn, name)
            conn.execute(apps.delete().where(apps.c.name == name))
            bump_epoch(conn)

    # -- hosts ---------------------------------------------------------------
    def upsert_host(self, host: Host) -> Host:
        """Insert or update ``host``; a new host gets the lowest free 6PN host number,
        a known one keeps its number (and its first registration time)."""
        values = host_values(host)
        update = {k: v for k, v in values.items() if k not in ("id", "registered_at", "sixpn_host")}
        with self._write() as conn:
            known = conn.execute(select(hosts.c.sixpn_host).where(hosts.c.id == host.id)).scalar()
            if known is None:
                used = conn.execute(select(hosts.c.sixpn_host)).scalars()
                values["sixpn_host"] = lowest_free(used, MAX_HOST)
            statement = sqlite_insert(hosts).values(values)
            conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=update))
            bump_epoch(conn)
        return self.get_host(host.id)

    def get_host(self, host_id: str) -> Host:
        with self._read() as conn:
            row = conn.execute(select(hosts).where(hosts.c.id == host_id)).first()
        if row is None:
            raise NotFoundError(
                f"host {host_id!r} is not registered", hint="start its agent so it registers"
            )
        return host_from_row(row)

    def list_hosts(self) -> list[Host]:
        with self._read() as conn:
            return [self._host(row) for row in conn.execute(select(hosts).order_by(hosts.c.id))]

    def _host(self, row: Row[Any]) -> Host:
        # A host row's values name one immutable version of it (a heartbeat changes
        # last_heartbeat): every placement reads every host, so parse each version once.
        key = tuple(row)
        cached = self._parsed_hosts.get(key)
        if cached is None:
            cached = host_from_row(row)
            with self._parsed_lock:
                if len(self._parsed_hosts) >= _PARSED_CACHE_SIZE:
                    self._parsed_hosts.clear()
                self._parsed_hosts[key] = cached
        return cached

    def record_heartbeat(self, host_id: str, at: datetime) -> Host:
        self.set_host_status(host_id, HostStatus.UP, heartbeat=at)
        return self.get_host(host_id)

    def set_host_status(
        self, host_id: str, status: HostStatus, *, heartbeat: datetime | None = None
    ) -> None:
        values: dict[str, Any] = {"status": status.value}
        if heartbeat is not None:
            values["last_heartbeat"] = ts(heartbeat)
        with self._write() as conn:
            # A heartbeat of a host already up changes nothing placement reads.
            before = conn.execute(select(hosts.c.status).where(hosts.c.id == host_id)).scalar()
            if before is not None and before != status.value:
                bump_epoch(conn)
            result = conn.execute(hosts.update().where(hosts.c.id == host_id).values(values))
        if result.rowcount == 0:
            raise NotFoundError(
                f"host {host_id!r} is not registered", hint="register it again (restart its agent)"
            )

    # -- machines ------------------------------------------------------------
    def _machine(self, row: Row[Any]) -> Machine:
        # Every write gives a row a new, store-unique resource version, so
        # (id, resource_version) names one immutable version of a machine:
        # parsing its JSON once keeps snapshots cheap as a cluster grows.
        key = (row.id, row.resource_version)
        cached = self._parsed.get(key)
        if cached is None:
            cached = machine_from_row(row)
            with self._parsed_lock:
                if len(self._parsed) >= _PARSED_CACHE_SIZE:
                    self._parsed.clear()
                self._parsed[key] = cached
        return cached

    @staticmethod
    def _bump(conn: Connection) -> int:
        statement = (
            counters.update()
            .where(counters.c.name == "resource_version")
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        )
        return int(conn.execute(statement).scalar_one())

    @staticmethod
    def _insert_event(conn: Connection, machine_id: str, item: MachineEvent) -> None:
        conn.execute(events.insert().values(event_values(machine_id, item)))

    def insert_machine(
        self,
        machine: Machine,
        event: MachineEvent | None = None,
        *,
        expected: PlacementVersions | None = None,
    ) -> Machine:
        fields = {name: getattr(machine, name) for name in MUTABLE_FIELDS if name != "updated_at"}
        values = encode_machine_changes(fields)
        created, updated = ts(machine.created_at), ts(machine.updated_at)
        values.update(
            id=machine.id,
            name=machine.name,
            app_name=machine.app_name,
            region=machine.region,
            revision=1,
            created_at=created,
            updated_at=updated,
        )
        version = {
            "machine_id": machine.id,
            "version": machine.instance_id,
            "config": values["config"],
            "created_at": created,
        }
        event_row = None if event is None else event_values(machine.id, event)
        try:
            with self._db.raw_write() as cursor:
                write_new_machine(cursor, values, version, event_row, expected)
        except StaleRows as stale:
            raise stale.to_conflict(self._machine) from None
        except sqlite3.IntegrityError as exc:
            raise ConflictError(
                f"machine {machine.id} or address {machine.host_ip} on host {machine.host_id} "
                f"is already in use (or its 6PN address {machine.private_ip})",
                hint="retry the request",
            ) from exc
        # What was written, as a read would return it (timestamps round-trip
        # through epoch seconds), without reading it back.
        return machine.model_copy(
            update={"revision": 1, "created_at": dt(created), "updated_at": dt(updated)}
        )

    def get_machine(self, machine_id: str) -> Machine:
        with self._read() as conn:
            row = conn.execute(select(machines).where(machines.c.id == machine_id)).first()
        if row is None:
            raise NotFoundError(f"machine {machine_id!r} not found")
        return self._machine(row)

    def list_machines(
        self,
        *,
        app_name: str | None = None,
        host_id: str | None = None,
        host_ids: Collection[str] | None = None,
        include_destroyed: bool = True,
    ) -> list[Machine]:
        query = select(machines).order_by(machines.c.created_at, machines.c.id)
        if host_ids is not None:
            query = query.where(machines.c.host_id.in_(list(host_ids)))
        if app_name is not None:
            query = query.where(machines.c.app_name == app_name)
        if host_id is not None:
            query = query.where(machines.c.host_id == host_id)
        if not include_destroyed:
            query = query.where(_LIVE)
        with self._read() as conn:
            return [self._machine(row) for row in conn.execute(query)]

    def update_machine(
        self,
        machine_id: str,
        expected_revision: int,
        *,
        event: MachineEvent | None = None,
        **changes: Any,
    ) -> Machine:
        values = encode_machine_changes(changes)
        values["revision"] = expected_revision + 1
        with self._write() as conn:
            values["resource_version"] = self._bump(conn)
            result = conn.execute(
                machines.update()
                .where(machines.c.id == machine_id, machines.c.revision == expected_revision)
                .values(values)
            )
            if result.rowcount == 0:
                current = conn.execute(
                    select(machines.c.revision).where(machines.c.id == machine_id)
                ).scalar()
                if current is None:
                    raise NotFoundError(f"machine {machine_id!r} not found")
                raise RevisionConflict(
                    f"machine {machine_id} changed meanwhile (revision {current}, "
                    f"not {expected_revision})",
                    hint="read it again and retry",
                )
            if event is not None:
                self._insert_event(conn, machine_id, event)
            row = conn.execute(select(machines).where(machines.c.id == machine_id)).one()
            if "config" in changes or "instance_id" in changes:
                record_version(
                    conn,
                    machine_id,
                    row.instance_id,
                    MachineConfig.model_validate_json(row.config),
                    row.updated_at,
                )
        return self._machine(row)

    def host_snapshot(self, host_id: str) -> HostSnapshot:
        with self._read() as conn:
            version = conn.execute(
                select(counters.c.value).where(counters.c.name == "resource_version")
            ).scalar_one()
            host_version = conn.execute(
                select(func.max(machines.c.resource_version)).where(machines.c.host_id == host_id)
            ).scalar()
            rows = conn.execute(
                select(machines)
                .where(machines.c.host_id == host_id, _LIVE)
                .order_by(machines.c.created_at, machines.c.id)
            ).all()
        return HostSnapshot(
            resource_version=int(version),
            host_version=int(host_version or 0),
            machines=[self._machine(row) for row in rows],
        )

    def resource_version(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(
                    select(counters.c.value).where(counters.c.name == "resource_version")
                ).scalar_one()
            )

    # -- events and logs -----------------------------------------------------
    def append_event(self, machine_id: str, event: MachineEvent) -> None:
        with self._write() as conn:
            self._insert_event(conn, machine_id, event)

    def list_events(self, machine_id: str, limit: int = 100) -> list[MachineEvent]:
        query = (
            select(events)
            .where(events.c.machine_id == machine_id)
            .order_by(events.c.seq.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [event_from_row(row) for row in rows]

    def append_logs(self, machine_id: str, lines: list[str], *, keep: int = 1000) -> None:
        if not lines:
            return
        with self._write() as conn:
            conn.execute(logs.insert(), [{"machine_id": machine_id, "line": ln} for ln in lines])
            conn.execute(
                text(
                    "DELETE FROM logs WHERE machine_id = :m AND seq < (SELECT seq FROM logs "
                    "WHERE machine_id = :m ORDER BY seq DESC LIMIT 1 OFFSET :k)"
                ),
                {"m": machine_id, "k": keep - 1},
            )

    def tail_logs(self, machine_id: str, tail: int) -> list[str]:
        query = (
            select(logs.c.line)
            .where(logs.c.machine_id == machine_id)
            .order_by(logs.c.seq.desc())
            .limit(tail)
        )
        with self._read() as conn:
            lines = list(conn.execute(query).scalars())
        return lines[::-1]

    # -- autoscale policies --------------------------------------------------
    def set_autoscale_policy(self, app_name: str, policy: AutoscalePolicy) -> None:
        self.get_app(app_name)
        values = {"policy": policy.model_dump_json(), "updated_at": time.time()}
        statement = sqlite_insert(autoscale_policies).values(app_name=app_name, **values)
        with self._write() as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=["app_name"], set_=values))

    def get_autoscale_policy(self, app_name: str) -> AutoscalePolicy | None:
        query = select(autoscale_policies.c.policy).where(autoscale_policies.c.app_name == app_name)
        with self._read() as conn:
            text_value = conn.execute(query).scalar()
        return None if text_value is None else AutoscalePolicy.model_validate_json(text_value)

    def delete_autoscale_policy(self, app_name: str) -> bool:
        with self._write() as conn:
            result = conn.execute(
                autoscale_policies.delete().where(autoscale_policies.c.app_name == app_name)
            )
        return bool(result.rowcount)

    def list_autoscale_policies(self) -> dict[str, AutoscalePolicy]:
        query = select(autoscale_policies).order_by(autoscale_policies.c.app_name)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return {row.app_name: AutoscalePolicy.model_validate_json(row.policy) for row in rows}

    # -- meta ----------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        statement = sqlite_insert(meta).values(key=key, value=value)
        with self._write() as conn:
            conn.execute(
                statement.on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )
