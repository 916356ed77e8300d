"""Organizations, members, invitations and tokens: the rules around the store's rows.

Every call takes the caller (``Principal``) and checks it with
``ferry.server.authz`` before changing anything; a refused call changes
nothing. Plain secrets (a new token, an invitation) are returned once and
never stored: the store keeps their SHA-256 digests.

All functions block on store I/O and are safe from several threads. After
each change it commits (tokens, members, invitations accepted, organizations,
app moves) the service calls its ``listeners`` (the authentication cache
drops what it holds), before the call returns.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ferry.errors import ForbiddenError, NotFoundError, ValidationError
from ferry.model import Organization
from ferry.model.access import Invitation, Member, Role, TokenInfo, TokenKind
from ferry.model.duration import parse_duration
from ferry.model.names import APP_NAME_RULE, app_name_problem
from ferry.server import tokens
from ferry.server.authz import Access, Principal, org_access, require_app, require_org
from ferry.server.clock import Clock
from ferry.store import StateStore

__all__ = ["AccessService", "NewToken", "OrgDetails", "expiry_seconds"]

INVITATION_TTL = timedelta(days=7)
MAX_TOKEN_NAME = 100
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_INVITATION_PREFIX = "foi1_"


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``plain`` is shown to the caller once."""

    info: TokenInfo
    plain: str


@dataclass(frozen=True)
class OrgDetails:
    org: Organization
    members: list[Member]
    apps: list[str]


def check_email(email: str) -> str:
    """``email`` lowercased; ``ValidationError`` unless it looks like one."""
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValidationError(
            f"invalid email {email!r}", hint="give an address like alice@example.com"
        )
    return email.lower()


def check_slug(slug: str) -> None:
    problem = app_name_problem(slug)
    if problem is not None:
        raise ValidationError(
            f"invalid organization slug {slug!r}: it {problem}", hint=APP_NAME_RULE
        )


class AccessService:
    """Who may do what, and the calls that change it."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        #: Called with no arguments after every committed change; must not raise.
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    # -- organizations ----------------------------------------------------------
    def create_org(
        self, p: Principal, slug: str, name: str, admin_email: str | None
    ) -> Organization:
        """The operator creates any organization (``admin_email`` its first admin);
        a member's user token creates one with that member as its admin."""
        check_slug(slug)
        if not name.strip() or len(name) > 100:
            raise ValidationError(
                "organization name must be 1-100 characters", hint="e.g. --name 'Acme Inc'"
            )
        if p.is_operator:
            admin = None if admin_email is None else check_email(admin_email)
        elif p.kind == TokenKind.USER and p.email is not None:
            if admin_email is not None and check_email(admin_email) != p.email:
                raise ForbiddenError(
                    "a user token creates organizations with its own user as admin",
                    hint="leave out the admin email, or ask the operator",
                )
            admin = p.email
        else:
            raise ForbiddenError(
                f"{p.describe()} may not create organizations",
                hint="use your user token (from an invitation) or the admin token",
            )
        org = self.store.create_org(slug, name.strip(), at=self.clock.now(), admin_email=admin)
        self._changed()
        return org

    def list_orgs(self, p: Principal) -> list[Organization]:
        orgs = self.store.list_orgs()
        return [org for org in orgs if org_access(p, org.slug) is not Access.NONE]

    def show_org(self, p: Principal, slug: str) -> OrgDetails:
        require_org(p, slug, Access.READ)
        found = self.store.list_orgs([slug])
        if not found:
            raise NotFoundError(f"organization {slug!r} not found", hint="see `ferry orgs list`")
        org = found[0]
        names = [app.name for app in self.store.list_apps(slug)]
        return OrgDetails(org=org, members=self.store.list_members(slug), apps=names)

    def destroy_org(self, p: Principal, slug: str) -> None:
        require_org(p, slug, Access.ADMIN)
        if slug == "personal":
            raise ValidationError(
                "the 'personal' organization cannot be destroyed", hint="it is the default"
            )
        self.store.delete_org(slug)
        self._changed()

    def move_app(self, p: Principal, app_name: str, to_org: str) -> None:
        """Needs the right to change the app and to create apps in ``to_org``."""
        require_app(p, app_name, self.store.app_org(app_name), Access.WRITE)
        require_org(p, to_org, Access.WRITE)
        self.store.move_app(app_name, to_org)
        self._changed()

    # -- members and invitations ------------------------------------------------
    def list_members(self, p: Principal, slug: str) -> list[Member]:
        self._require_existing_org(p, slug, Access.READ)
        return self.store.list_members(slug)

    def set_role(self, p: Principal, slug: str, email: str, role: Role) -> Member:
        require_org(p, slug, Access.ADMIN)
        member = self.store.put_member(slug, check_email(email), role, at=self.clock.now())
        self._changed()
        return member

    def remove_member(self, p: Principal, slug: str, email: str) -> None:
        require_org(p, slug, Access.ADMIN)
        self.store.remove_member(slug, check_email(email), at=self.clock.now())
        self._changed()

    def invite(self, p: Principal, slug: str, email: str, role: Role) -> tuple[Invitation, str]:
        """A new invitation and its plain value (shown once; good for ``INVITATION_TTL``)."""
        require_org(p, slug, Access.ADMIN)
        now = self.clock.now()
        secret = secrets.token_urlsafe(32)
        invitation = Invitation(
            id=secrets.token_hex(8),
            org_slug=slug,
            email=check_email(email),
            role=role,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        )
        self.store.create_invitation(invitation, tokens.digest(secret))
        return invitation, _INVITATION_PREFIX + secret

    def list_invitations(self, p: Principal, slug: str) -> list[Invitation]:
        self._require_existing_org(p, slug, Access.ADMIN)
        return self.store.list_invitations(slug)

    def accept(self, plain: str, token_name: str | None) -> tuple[Invitation, NewToken]:
        """Use an invitation (its value is the credential): membership plus a user token."""
        secret = plain.strip().removeprefix(_INVITATION_PREFIX)
        now = self.clock.now()
        invitation = self.store.accept_invitation(tokens.digest(secret), at=now)
        self._changed()
        token = self._mint(
            TokenKind.USER,
            token_name or f"{invitation.email} (joined {invitation.org_slug})",
            email=invitation.email,
            expires_in=None,
        )
        return invitation, token

    # -- tokens -----------------------------------------------------------------
    def issue_host_credential(self, host_id: str, region: str) -> NewToken:
        """A ``host`` credential for a host that just joined with a join token (the
        token was the operator's consent; ``ferry.server.join_service`` checked it)."""
        return self._mint(
            TokenKind.HOST, f"{host_id} (joined)", host_id=host_id, region=region, expires_in=None
        )

    def create_token(
        self,
        p: Principal,
        kind: TokenKind,
        *,
        name: str,
        org_slug: str | None = None,
        app_name: str | None = None,
        host_id: str | None = None,
        region: str | None = None,
        expiry: str | None = None,
    ) -> NewToken:
        """Create a token of ``kind`` (see ``TokenKind``) that the caller may give.

        ``org`` tokens need an admin of the organization; ``deploy`` and app
        ``readonly`` tokens the right to change the app; organization-wide
        ``readonly`` tokens a member; ``host`` and ``edge`` credentials the operator.
        """
        if len(name) > MAX_TOKEN_NAME:
            raise ValidationError(f"token name is longer than {MAX_TOKEN_NAME} characters")
        expires_in = None if expiry is None else expiry_seconds(expiry)
        if kind in (TokenKind.HOST, TokenKind.EDGE):
            if not p.is_operator:
                raise ForbiddenError(
                    f"only the operator creates {kind.value} credentials",
                    hint="use the admin token",
                )
            if (host_id if kind is TokenKind.HOST else region) is None:
                what = "host_id" if kind is TokenKind.HOST else "region"
                raise ValidationError(f"a {kind.value} credential needs {what}")
            return self._mint(kind, name, host_id=host_id, region=region, expires_in=expires_in)
        if kind is TokenKind.USER:
            raise ValidationError(
                "user tokens come with an accepted invitation",
                hint="invite the person with `ferry orgs invite`",
            )
        if kind is TokenKind.DEPLOY or (kind is TokenKind.READONLY and app_name is not None):
            if app_name is None:
                raise ValidationError("a deploy token needs an app", hint="pass -a APP")
            app_org = self.store.app_org(app_name)
            require_app(p, app_name, app_org, Access.WRITE)
            if p.kind == TokenKind.DEPLOY:
                raise ForbiddenError(
                    "a deploy token cannot create tokens", hint="use an organization token"
                )
            return self._mint(
                kind, name, org_slug=app_org, app_name=app_name, expires_in=expires_in
            )
        if org_slug is None:
            raise ValidationError(f"a {kind.value} token needs an organization", hint="pass -o ORG")
        wanted = Access.ADMIN if kind is TokenKind.ORG else Access.WRITE
        self._require_existing_org(p, org_slug, wanted)
        return self._mint(kind, name, org_slug=org_slug, expires_in=expires_in)

    def list_tokens(self, p: Principal, org_slug: str | None) -> list[TokenInfo]:
        """The operator sees every token (``org_slug`` filters); an admin those of the org."""
        if p.is_operator:
            if org_slug is not None:
                self._require_existing_org(p, org_slug, Access.ADMIN)
            return self.store.list_tokens(org_slug=org_slug)
        if org_slug is None:
            raise ValidationError("name the organization", hint="pass -o ORG")
        require_org(p, org_slug, Access.ADMIN)
        return self.store.list_tokens(org_slug=org_slug)

    def revoke_token(self, p: Principal, token_id: str) -> TokenInfo:
        """The operator revokes any token, an org admin its organization's, anyone itself."""
        found = self.store.get_token(token_id)
        if found is None:
            raise NotFoundError(f"token {token_id!r} not found", hint="see `ferry tokens list`")
        info = found[0]
        own = p.token_id == token_id
        if not (p.is_operator or own):
            if info.org_slug is None:
                raise NotFoundError(f"token {token_id!r} not found", hint="see `ferry tokens list`")
            require_org(p, info.org_slug, Access.ADMIN)
        revoked = self.store.revoke_token(token_id, at=self.clock.now())
        self._changed()
        return revoked

    def _require_existing_org(self, p: Principal, slug: str, wanted: Access) -> None:
        """``require_org``, and the organization must exist: the operator passes every
        check, and a token minted for a missing slug would rule an organization
        created under that name later."""
        require_org(p, slug, wanted)
        if not self.store.list_orgs([slug]):
            raise NotFoundError(f"organization {slug!r} not found", hint="see `ferry orgs list`")

    def _mint(
        self,
        kind: TokenKind,
        name: str,
        *,
        org_slug: str | None = None,
        app_name: str | None = None,
        email: str | None = None,
        host_id: str | None = None,
        region: str | None = None,
        expires_in: float | None,
    ) -> NewToken:
        token_id, plain = tokens.mint()
        now = self.clock.now()
        info = TokenInfo(
            id=token_id,
            name=name or f"{kind.value} token",
            kind=kind,
            org_slug=org_slug,
            app_name=app_name,
            email=email,
            host_id=host_id,
            region=region,
            created_at=now,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
        )
        parts = tokens.split(plain)
        assert parts is not None  # mint() makes well-formed tokens
        self.store.insert_token(info, tokens.digest(parts[1]))
        self._changed()
        return NewToken(info=info, plain=plain)


def expiry_seconds(expiry: str) -> float:
    """flyctl's ``--expiry`` (``24h``, ``720h``, ``30m``); ``ValidationError`` otherwise."""
    try:
        seconds = parse_duration(expiry)
    except ValidationError:
        raise ValidationError(
            f"invalid expiry {expiry!r}", hint="write it like 24h, 720h or 30m"
        ) from None
    if seconds <= 0:
        raise ValidationError(f"invalid expiry {expiry!r}: it must be positive", hint="e.g. 24h")
    return seconds
