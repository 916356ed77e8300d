"""The audit trail: one record per call that changed something or was refused.

A record says who (the token's description, never its secret), what (the
method, the route template and the path parameters it named), when, from where
(the client address) and the outcome (the HTTP status and ``ok`` or the error
sentence). Request bodies are never part of a record: they may hold secrets.
Records are appended and never changed (``ferry.store.audit_base``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_OUTCOME", "AuditEntry", "AuditRecord"]

#: The longest outcome sentence kept (longer error messages are cut).
MAX_OUTCOME = 500


class AuditEntry(BaseModel):
    """A record about to be appended (it gets its ``id`` from the store)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    org_slug: str | None = None
    actor: str
    token_id: str | None = None
    method: str
    route: str
    target: dict[str, str] = Field(default_factory=dict)
    source: str = ""
    status: int
    outcome: str = Field(max_length=MAX_OUTCOME)


class AuditRecord(AuditEntry):
    """A stored record; ``id`` grows with every append (newest is highest)."""

    id: int
