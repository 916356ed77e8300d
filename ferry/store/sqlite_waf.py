"""WAF events in the SQLite store (a mixin of ``SqliteStore``; table of migration 12)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Connection, text

from ferry.model.machine_waf import WafEvent
from ferry.store.sqlite_rows import ts
from ferry.store.waf_base import WAF_EVENTS_PER_APP

__all__ = ["WafEventRows", "delete_app_waf_events"]

_TRIM = text(
    "DELETE FROM waf_events WHERE app_name = :app AND id <= (SELECT id FROM waf_events "
    "WHERE app_name = :app ORDER BY id DESC LIMIT 1 OFFSET :keep)"
)


def delete_app_waf_events(conn: Connection, app_name: str) -> None:
    """Remove the app's events (inside ``delete_app``'s transaction): a new app of the
    same name, maybe of another organization, must not see them."""
    conn.execute(text("DELETE FROM waf_events WHERE app_name = :app"), {"app": app_name})


class WafEventRows:
    """The WAF-event methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    def add_waf_events(self, events: list[WafEvent]) -> int:
        if not events:
            return 0
        rows = [{"app": e.app, "at": ts(e.time), "event": e.model_dump_json()} for e in events]
        with self._write() as conn:
            conn.execute(
                text("INSERT INTO waf_events (app_name, at, event) VALUES (:app, :at, :event)"),
                rows,
            )
            for app in {e.app for e in events}:
                conn.execute(_TRIM, {"app": app, "keep": WAF_EVENTS_PER_APP})
        return len(rows)

    def list_waf_events(
        self, app_name: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[WafEvent]:
        query = (
            "SELECT event FROM waf_events WHERE app_name = :app AND at >= :since "
            "ORDER BY at DESC, id DESC LIMIT :limit"
        )
        params = {"app": app_name, "since": ts(since) if since else 0.0, "limit": max(limit, 0)}
        with self._read() as conn:
            rows = conn.execute(text(query), params).all()
        return [WafEvent.model_validate_json(row.event) for row in reversed(rows)]
