"""Who may do what: organizations' members, invitations and API tokens.

Fly's model: an app belongs to one organization; people are members of
organizations with a role; tokens are limited to what they are for. The
secrets behind tokens and invitations are never part of these models: the
store keeps only their SHA-256 digests, and the plain value is shown once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["Invitation", "Member", "Role", "TokenInfo", "TokenKind"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Role(StrEnum):
    """A member's role in an organization: admins also manage members and tokens."""

    ADMIN = "admin"
    MEMBER = "member"


class TokenKind(StrEnum):
    """What a token may do (``ferry.server.authz`` decides).

    - ``user``: a member's own token, acting with the member's role in each of
      their organizations (given when an invitation is accepted);
    - ``org``: everything in one organization, as an admin would (Fly's org token);
    - ``deploy``: one app: deploy it and manage its machines, nothing else;
    - ``readonly``: read one organization, or one app when it names one;
    - ``host``: one host agent's work (its machines' desired state and reports);
    - ``edge``: one region's edge proxy (routes, its traffic reports).
    """

    USER = "user"
    ORG = "org"
    DEPLOY = "deploy"
    READONLY = "readonly"
    HOST = "host"
    EDGE = "edge"


class Member(_Frozen):
    org_slug: str
    email: str
    role: Role
    joined_at: datetime


class Invitation(_Frozen):
    """An invitation to join ``org_slug`` as ``role``; accepted once, before ``expires_at``."""

    id: str
    org_slug: str
    email: str
    role: Role
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None = None


class TokenInfo(_Frozen):
    """A stored token, without its secret. Scope fields are set per ``kind``."""

    id: str
    name: str
    kind: TokenKind
    org_slug: str | None = None
    app_name: str | None = None
    email: str | None = None
    host_id: str | None = None
    region: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at
