"""The audit-trail part of the storage contract: append and read, nothing else.

``StateStore`` extends it; ``ferry.store.sqlite_audit`` implements it for
SQLite. There is deliberately no method to change or remove a record, and the
SQLite table refuses ``UPDATE`` and ``DELETE`` itself (a trigger), so not even
a bug elsewhere in the store can rewrite history. Retention is not managed yet:
records are kept for the life of the state database.
"""

from __future__ import annotations

from typing import Protocol

from ferry.model.audit import AuditEntry, AuditRecord

__all__ = ["AuditStore"]


class AuditStore(Protocol):
    """Append-only audit records. Every method blocks and is thread-safe."""

    def append_audit(self, entry: AuditEntry) -> AuditRecord:
        """Append ``entry``; the stored record has the next id (ids only grow)."""
        ...

    def try_append_audit(self, entry: AuditEntry) -> AuditRecord | None:
        """``append_audit`` if that needs no waiting for another writer; else ``None`` at
        once, nothing written. For callers on an event loop: a thread hand-off costs
        more than the insert itself."""
        ...

    def list_audit(
        self, org_slug: str | None, *, limit: int = 100, before: int | None = None
    ) -> list[AuditRecord]:
        """Records newest first: of ``org_slug`` (``None``: every record, any organization
        or none), at most ``limit``, only those with an id below ``before`` when given
        (the ``id`` of the last record of a page asks for the next page)."""
        ...
