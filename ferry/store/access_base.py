"""The organizations, members, invitations and tokens part of the storage contract.

``StateStore`` extends it; ``ferry.store.sqlite_access`` implements it for SQLite.
Secrets are never passed in: callers give the SHA-256 digest of a token's or
an invitation's secret, never the value.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from ferry.model import Organization
from ferry.model.access import Invitation, Member, Role, TokenInfo, TokenKind

__all__ = ["AccessStore"]


class AccessStore(Protocol):
    """Who may do what. Every method blocks and is thread-safe."""

    def create_org(
        self, slug: str, name: str, *, at: datetime, admin_email: str | None = None
    ) -> Organization:
        """Create an organization, with ``admin_email`` as its first admin when given;
        ``ConflictError`` if the slug is taken."""
        ...

    def list_orgs(self, slugs: Collection[str] | None = None) -> list[Organization]:
        """Organizations sorted by slug, optionally only those in ``slugs``."""
        ...

    def delete_org(self, slug: str) -> None:
        """Remove an organization with its members, invitations and tokens;
        ``ConflictError`` while it has apps, ``NotFoundError`` if unknown."""
        ...

    def app_org(self, name: str) -> str | None:
        """The organization of app ``name``, or ``None`` when there is no such app."""
        ...

    def move_app(self, name: str, org_slug: str) -> None:
        """Give the app to another organization; its app-scoped tokens are deleted."""
        ...

    def list_members(self, slug: str) -> list[Member]:
        """Members sorted by email."""
        ...

    def roles_of(self, email: str) -> dict[str, Role]:
        """The organizations ``email`` is a member of, with the role in each."""
        ...

    def put_member(self, slug: str, email: str, role: Role, *, at: datetime) -> Member:
        """Change a member's role; ``ConflictError`` if that leaves no admin."""
        ...

    def remove_member(self, slug: str, email: str, *, at: datetime) -> None:
        """Remove a member and revoke their tokens of ``slug``; ``ConflictError`` for
        the last admin."""
        ...

    def create_invitation(self, invitation: Invitation, secret_sha256: str) -> Invitation:
        """Store an invitation by its secret's digest."""
        ...

    def list_invitations(self, slug: str) -> list[Invitation]:
        """The organization's invitations, oldest first."""
        ...

    def accept_invitation(self, secret_sha256: str, *, at: datetime) -> Invitation:
        """Use an invitation once: its invitee becomes a member (``NotFoundError`` for
        an unknown, used or expired one)."""
        ...

    def insert_token(self, info: TokenInfo, token_sha256: str) -> TokenInfo:
        """Store a token by its secret's digest."""
        ...

    def get_token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        """The token and its secret's digest, or ``None``."""
        ...

    def list_tokens(
        self, *, org_slug: str | None = None, kinds: Collection[TokenKind] | None = None
    ) -> list[TokenInfo]:
        """Tokens oldest first, optionally of one organization and of some kinds."""
        ...

    def revoke_token(self, token_id: str, *, at: datetime) -> TokenInfo:
        """Revoke a token (idempotent); ``NotFoundError`` if unknown."""
        ...
