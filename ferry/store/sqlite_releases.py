"""The releases part of the SQLite ``StateStore`` (mixed into ``SqliteStore``).

A release's version is the app's highest version plus one, chosen inside the
same immediate (write) transaction as the insert, so two deploys that start
together get two distinct versions. A release's configs are stored as one
JSON object ``{group: MachineConfig}`` in ``configs``; rows from before
migration 7 have only the single ``config``, read with ``configs_of_legacy``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Connection, Row, func, select

from ferry.errors import ConflictError, NotFoundError
from ferry.model import MachineConfig
from ferry.model.release import NewRelease, Release, ReleaseStatus, configs_of_legacy
from ferry.store.schema import apps, releases
from ferry.store.sqlite_rows import dt, ts

__all__ = ["SqliteReleases"]

_CONFIGS = TypeAdapter(dict[str, MachineConfig])


def _configs_from_row(row: Row[Any]) -> dict[str, MachineConfig] | None:
    if row.configs is not None:
        return _CONFIGS.validate_json(row.configs)
    if row.config is not None:
        return configs_of_legacy(MachineConfig.model_validate_json(row.config))
    return None


def _release_from_row(row: Row[Any]) -> Release:
    return Release(
        app_name=row.app_name,
        version=row.version,
        image=row.image,
        status=row.status,
        strategy=row.strategy,
        description=row.description,
        user=row.user_name,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
        configs=_configs_from_row(row),
    )


def _missing(app_name: str, version: int) -> NotFoundError:
    return NotFoundError(
        f"app {app_name!r} has no release v{version}",
        hint=f"list its releases with `ferry releases -a {app_name}`",
    )


class SqliteReleases:
    """Release rows; needs the ``_read``/``_write`` transactions of ``SqliteStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def create_release(self, app_name: str, new: NewRelease, *, user: str, at: datetime) -> Release:
        with self._write() as conn:
            if conn.execute(select(apps.c.name).where(apps.c.name == app_name)).first() is None:
                raise NotFoundError(f"app {app_name!r} not found")
            latest = conn.execute(
                select(func.max(releases.c.version)).where(releases.c.app_name == app_name)
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(
                releases.insert().values(
                    app_name=app_name,
                    version=version,
                    image=new.image,
                    status="running",
                    strategy=new.strategy,
                    description=new.description,
                    user_name=user,
                    configs=None
                    if new.configs is None
                    else _CONFIGS.dump_json(new.configs).decode(),
                    created_at=ts(at),
                    updated_at=ts(at),
                )
            )
        return self.get_release(app_name, version)

    def get_release(self, app_name: str, version: int) -> Release:
        query = select(releases).where(
            releases.c.app_name == app_name, releases.c.version == version
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise _missing(app_name, version)
        return _release_from_row(row)

    def list_releases(self, app_name: str, limit: int = 100) -> list[Release]:
        query = (
            select(releases)
            .where(releases.c.app_name == app_name)
            .order_by(releases.c.version.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [_release_from_row(row) for row in conn.execute(query)]

    def finish_release(
        self, app_name: str, version: int, status: ReleaseStatus, *, at: datetime
    ) -> Release:
        where = (releases.c.app_name == app_name, releases.c.version == version)
        with self._write() as conn:
            current = conn.execute(select(releases.c.status).where(*where)).scalar()
            if current is None:
                raise _missing(app_name, version)
            if current != "running":
                raise ConflictError(
                    f"release v{version} of {app_name!r} is already {current}",
                    hint="only a running release can be marked complete or failed",
                )
            conn.execute(releases.update().where(*where).values(status=status, updated_at=ts(at)))
        return self.get_release(app_name, version)

    def _delete_releases(self, conn: Connection, app_name: str) -> None:
        """Part of ``delete_app``'s transaction."""
        conn.execute(releases.delete().where(releases.c.app_name == app_name))
