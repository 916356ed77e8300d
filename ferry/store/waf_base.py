"""The WAF-events part of the storage contract (``ferry.store.sqlite_waf`` for SQLite).

Events are what the edges report for requests that matched a WAF rule. They
are kept per app up to ``WAF_EVENTS_PER_APP`` (the oldest go first) and
removed with the app.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ferry.model.machine_waf import WafEvent

__all__ = ["WAF_EVENTS_PER_APP", "WafEventStore"]

#: Events kept per app; older ones are dropped as new ones come.
WAF_EVENTS_PER_APP = 10_000


class WafEventStore(Protocol):
    """WAF events. Every method blocks and is thread-safe."""

    def add_waf_events(self, events: list[WafEvent]) -> int:
        """Keep ``events`` (of existing apps; the caller checks), trimming each app to
        ``WAF_EVENTS_PER_APP``. Returns how many were stored."""
        ...

    def list_waf_events(
        self, app_name: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[WafEvent]:
        """The app's newest ``limit`` events at or after ``since``, oldest first."""
        ...
