"""Organizations, members, invitations and tokens in the SQLite store (a mixin of ``SqliteStore``).

Rules that must hold under concurrent writers are checked inside the write
transaction: an organization always keeps at least one admin, an invitation
is accepted once, an organization with apps is not destroyed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from ferry.errors import ConflictError, NotFoundError
from ferry.model import Organization
from ferry.model.access import Invitation, Member, Role, TokenInfo, TokenKind
from ferry.net.sixpn import lowest_free
from ferry.store.schema import apps, invitations, members, orgs, tokens
from ferry.store.sqlite_placement import bump_epoch
from ferry.store.sqlite_rows import dt, ts
from ferry.store.sqlite_wireguard import forget_wireguard_peers

__all__ = ["AccessRows"]


def _org(row: Any) -> Organization:
    return Organization(name=row.name, slug=row.slug, sixpn_network=row.sixpn_network)


def _member(row: Any) -> Member:
    return Member(
        org_slug=row.org_slug, email=row.email, role=Role(row.role), joined_at=dt(row.joined_at)
    )


def _invitation(row: Any) -> Invitation:
    return Invitation(
        id=row.id,
        org_slug=row.org_slug,
        email=row.email,
        role=Role(row.role),
        created_at=dt(row.created_at),
        expires_at=dt(row.expires_at),
        accepted_at=None if row.accepted_at is None else dt(row.accepted_at),
    )


def _token(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        kind=TokenKind(row.kind),
        org_slug=row.org_slug,
        app_name=row.app_name,
        email=row.email,
        host_id=row.host_id,
        region=row.region,
        created_at=dt(row.created_at),
        expires_at=None if row.expires_at is None else dt(row.expires_at),
        revoked_at=None if row.revoked_at is None else dt(row.revoked_at),
    )


def _admins_after(conn: Connection, slug: str, email: str, role: Role | None) -> int:
    """How many admins ``slug`` has once ``email`` has ``role`` (``None``: removed)."""
    others = conn.execute(
        select(func.count()).where(
            members.c.org_slug == slug, members.c.role == Role.ADMIN, members.c.email != email
        )
    ).scalar_one()
    return int(others) + (role is Role.ADMIN)


def _change_member(conn: Connection, slug: str, email: str, role: Role | None, hint: str) -> Any:
    """The member's row, refused (``NotFoundError``) when there is none, or
    (``ConflictError``) when giving it ``role`` (``None``: removing it) leaves no admin."""
    current = conn.execute(
        select(members).where(members.c.org_slug == slug, members.c.email == email)
    ).first()
    if current is None:
        raise NotFoundError(f"{email} is not a member of {slug!r}")
    if _admins_after(conn, slug, email, role) == 0:
        raise ConflictError(f"{email} is the last admin of {slug!r}", hint=hint)
    return current


class AccessRows:
    """The organization, member, invitation and token methods of ``StateStore``."""

    _read: Callable[[], AbstractContextManager[Connection]]
    _write: Callable[[], AbstractContextManager[Connection]]

    # -- organizations ----------------------------------------------------------
    def create_org(
        self, slug: str, name: str, *, at: datetime, admin_email: str | None = None
    ) -> Organization:
        try:
            with self._write() as conn:
                # The lowest free 6PN network number, inside the write transaction:
                # writers are serialized, so no two organizations get one number.
                network = lowest_free(conn.execute(select(orgs.c.sixpn_network)).scalars())
                conn.execute(
                    orgs.insert().values(
                        slug=slug, name=name, created_at=ts(at), sixpn_network=network
                    )
                )
                if admin_email is not None:
                    conn.execute(
                        members.insert().values(
                            org_slug=slug, email=admin_email, role=Role.ADMIN, joined_at=ts(at)
                        )
                    )
        except IntegrityError as exc:
            raise ConflictError(
                f"organization {slug!r} already exists", hint="choose another slug"
            ) from exc
        return Organization(name=name, slug=slug, sixpn_network=network)

    def list_orgs(self, slugs: Collection[str] | None = None) -> list[Organization]:
        query = select(orgs).order_by(orgs.c.slug)
        if slugs is not None:
            query = query.where(orgs.c.slug.in_(sorted(slugs)))
        with self._read() as conn:
            return [_org(row) for row in conn.execute(query)]

    def delete_org(self, slug: str) -> None:
        with self._write() as conn:
            if conn.execute(select(orgs.c.slug).where(orgs.c.slug == slug)).first() is None:
                raise NotFoundError(f"organization {slug!r} not found")
            left = conn.execute(
                select(apps.c.name).where(apps.c.org_slug == slug).order_by(apps.c.name)
            ).all()
            if left:
                names = ", ".join(row.name for row in left)
                raise ConflictError(
                    f"organization {slug!r} still has apps: {names}",
                    hint="destroy them or move them to another organization first",
                )
            conn.execute(tokens.delete().where(tokens.c.org_slug == slug))
            conn.execute(invitations.delete().where(invitations.c.org_slug == slug))
            conn.execute(members.delete().where(members.c.org_slug == slug))
            # Its WireGuard peers go with it: an organization created later under this
            # slug must not inherit them (ferry.store.sqlite_wireguard).
            forget_wireguard_peers(conn, slug)
            conn.execute(orgs.delete().where(orgs.c.slug == slug))

    def app_org(self, name: str) -> str | None:
        with self._read() as conn:
            found = conn.execute(select(apps.c.org_slug).where(apps.c.name == name)).scalar()
        return None if found is None else str(found)

    def move_app(self, name: str, org_slug: str) -> None:
        with self._write() as conn:
            if conn.execute(select(orgs.c.slug).where(orgs.c.slug == org_slug)).first() is None:
                raise NotFoundError(f"organization {org_slug!r} not found")
            moved = conn.execute(apps.update().where(apps.c.name == name).values(org_slug=org_slug))
            if moved.rowcount == 0:
                raise NotFoundError(f"app {name!r} not found")
            # Tokens scoped to the app belonged to its old organization: they end here.
            conn.execute(tokens.delete().where(tokens.c.app_name == name))
            # Placement caches the app with its organization (whose 6PN network new
            # machines get): make it read the app again.
            bump_epoch(conn)

    # -- members ----------------------------------------------------------------
    def list_members(self, slug: str) -> list[Member]:
        with self._read() as conn:
            rows = conn.execute(
                select(members).where(members.c.org_slug == slug).order_by(members.c.email)
            )
            return [_member(row) for row in rows]

    def roles_of(self, email: str) -> dict[str, Role]:
        with self._read() as conn:
            rows = conn.execute(select(members).where(members.c.email == email))
            return {row.org_slug: Role(row.role) for row in rows}

    def put_member(self, slug: str, email: str, role: Role, *, at: datetime) -> Member:
        with self._write() as conn:
            current = _change_member(conn, slug, email, role, "make another member admin first")
            conn.execute(
                members.update()
                .where(members.c.org_slug == slug, members.c.email == email)
                .values(role=role)
            )
            return _member(current).model_copy(update={"role": role})

    def remove_member(self, slug: str, email: str, *, at: datetime) -> None:
        with self._write() as conn:
            _change_member(
                conn,
                slug,
                email,
                None,
                "make another member admin first, or destroy the organization",
            )
            conn.execute(
                members.delete().where(members.c.org_slug == slug, members.c.email == email)
            )
            # A member's own tokens stop working for this organization at once.
            conn.execute(
                tokens.update()
                .where(
                    tokens.c.email == email,
                    tokens.c.org_slug == slug,
                    tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=ts(at))
            )

    # -- invitations ------------------------------------------------------------
    def create_invitation(self, invitation: Invitation, secret_sha256: str) -> Invitation:
        with self._write() as conn:
            if (
                conn.execute(select(orgs.c.slug).where(orgs.c.slug == invitation.org_slug)).first()
                is None
            ):
                raise NotFoundError(f"organization {invitation.org_slug!r} not found")
            conn.execute(
                invitations.insert().values(
                    id=invitation.id,
                    org_slug=invitation.org_slug,
                    email=invitation.email,
                    role=invitation.role,
                    secret_sha256=secret_sha256,
                    created_at=ts(invitation.created_at),
                    expires_at=ts(invitation.expires_at),
                )
            )
        return invitation

    def list_invitations(self, slug: str) -> list[Invitation]:
        with self._read() as conn:
            rows = conn.execute(
                select(invitations)
                .where(invitations.c.org_slug == slug)
                .order_by(invitations.c.created_at)
            )
            return [_invitation(row) for row in rows]

    def accept_invitation(self, secret_sha256: str, *, at: datetime) -> Invitation:
        """Mark the invitation accepted and make its invitee a member, in one transaction.

        ``NotFoundError`` for an unknown, used or expired invitation (one message
        for all three: a guessed value learns nothing). A member keeps the
        higher of their role and the invitation's.
        """
        with self._write() as conn:
            row = conn.execute(
                select(invitations).where(invitations.c.secret_sha256 == secret_sha256)
            ).first()
            if row is None or row.accepted_at is not None or row.expires_at <= ts(at):
                raise NotFoundError(
                    "invitation not found, already used or expired",
                    hint="ask an admin of the organization for a new one",
                )
            conn.execute(
                invitations.update().where(invitations.c.id == row.id).values(accepted_at=ts(at))
            )
            current = conn.execute(
                select(members).where(
                    members.c.org_slug == row.org_slug, members.c.email == row.email
                )
            ).first()
            if current is None:
                conn.execute(
                    members.insert().values(
                        org_slug=row.org_slug, email=row.email, role=row.role, joined_at=ts(at)
                    )
                )
            elif row.role == Role.ADMIN:
                conn.execute(
                    members.update()
                    .where(members.c.org_slug == row.org_slug, members.c.email == row.email)
                    .values(role=Role.ADMIN)
                )
            accepted = _invitation(row)
        return accepted.model_copy(update={"accepted_at": at})

    # -- tokens -----------------------------------------------------------------
    def insert_token(self, info: TokenInfo, token_sha256: str) -> TokenInfo:
        with self._write() as conn:
            conn.execute(
                tokens.insert().values(
                    id=info.id,
                    name=info.name,
                    token_sha256=token_sha256,
                    kind=info.kind,
                    org_slug=info.org_slug,
                    app_name=info.app_name,
                    email=info.email,
                    host_id=info.host_id,
                    region=info.region,
                    created_at=ts(info.created_at),
                    expires_at=None if info.expires_at is None else ts(info.expires_at),
                )
            )
        return info

    def get_token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        """The token and its secret's digest, or ``None``."""
        with self._read() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
        return None if row is None else (_token(row), row.token_sha256)

    def list_tokens(
        self, *, org_slug: str | None = None, kinds: Collection[TokenKind] | None = None
    ) -> list[TokenInfo]:
        query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if org_slug is not None:
            query = query.where(tokens.c.org_slug == org_slug)
        if kinds is not None:
            query = query.where(tokens.c.kind.in_(sorted(kinds)))
        with self._read() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke_token(self, token_id: str, *, at: datetime) -> TokenInfo:
        with self._write() as conn:
            row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
            if row is None:
                raise NotFoundError(f"token {token_id!r} not found", hint="see `ferry tokens list`")
            if row.revoked_at is None:
                conn.execute(
                    tokens.update().where(tokens.c.id == token_id).values(revoked_at=ts(at))
                )
            info = _token(row)
        return info if info.revoked_at is not None else info.model_copy(update={"revoked_at": at})
