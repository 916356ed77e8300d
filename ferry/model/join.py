"""Join tokens: the operator's one-time consent for a server to become a host.

``ferry host token create`` makes one; ``ferry host join --token … URL`` on the
new server spends it to register the host and receive the host's own
credential. A join token is good once, until it expires, and (when made with
``--region``) for one region only. The store keeps its digest, never its value.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["JoinToken"]


class JoinToken(BaseModel):
    """A join token as listed (its value is shown once, when created)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    name: str
    region: str | None = None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    used_by: str | None = Field(default=None, description="the host that joined with it")
