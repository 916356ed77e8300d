"""Organizations, members, invitations, tokens and app moves (Ferry's access API).

Fly keeps these in its GraphQL API; Ferry serves them as plain JSON routes
(``/v1/orgs``, ``/v1/tokens``, ``/v1/invitations/accept``; see
docs/orgs-and-tokens.md). The secret of a new token or invitation comes back
once, in the answer that creates it; the types below keep it out of ``repr``
so it never lands in a log or a traceback by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferry.client._http import HttpCore
from ferry.client._parse import parse_model, parse_models
from ferry.client._parse import path_segment as _seg
from ferry.errors import UnavailableError
from ferry.model import App, Organization
from ferry.model.access import Invitation, Member, Role, TokenInfo, TokenKind

__all__ = [
    "AccessMethods",
    "CreatedOrg",
    "Joined",
    "NewInvitation",
    "NewToken",
    "OrgDetails",
]


@dataclass(frozen=True)
class NewToken:
    """A token just created; ``token`` is its secret, shown this once."""

    info: TokenInfo
    token: str = field(repr=False)


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just made; ``value`` is what the invitee accepts, shown this once."""

    invitation: Invitation
    value: str = field(repr=False)


@dataclass(frozen=True)
class CreatedOrg:
    """A new organization; ``admin_invitation`` when the operator named its first admin."""

    org: Organization
    admin_invitation: NewInvitation | None = None


@dataclass(frozen=True)
class OrgDetails:
    """An organization with its members and the names of its apps."""

    org: Organization
    members: list[Member]
    apps: list[str]


@dataclass(frozen=True)
class Joined:
    """An accepted invitation: the membership it gave and the member's new user token."""

    membership: Invitation
    token: NewToken


class AccessMethods(HttpCore):
    """Every method blocks; errors as in ``HttpCore``. ``ApiError.status`` says why:
    400 bad input (named), 401 no or a dead token, 403 readable but not yours to
    change, 404 missing *or* not visible to this token (the two are not told
    apart), 409 a conflict such as removing the last admin."""

    # -- organizations ----------------------------------------------------------
    def list_orgs(self) -> list[Organization]:
        """The organizations this token can see (the operator: all of them)."""
        return parse_models(Organization, self._request("GET", "/v1/orgs"))

    def create_org(
        self, slug: str, *, name: str | None = None, admin_email: str | None = None
    ) -> CreatedOrg:
        """Create an organization. The operator may name its first admin
        (``admin_email``): the answer then carries that admin's invitation. A user
        token creates one with its own user as admin. A taken slug is 409."""
        body: dict[str, Any] = {"slug": slug}
        if name is not None:
            body["name"] = name
        if admin_email is not None:
            body["admin_email"] = admin_email
        data = _object(self._request("POST", "/v1/orgs", body=body), "organization")
        invitation = data.get("admin_invitation")
        return CreatedOrg(
            org=parse_model(Organization, data),
            admin_invitation=None if invitation is None else _new_invitation(invitation),
        )

    def get_org(self, slug: str) -> OrgDetails:
        data = _object(self._request("GET", f"/v1/orgs/{_seg(slug)}"), "organization")
        return OrgDetails(
            org=parse_model(Organization, data),
            members=parse_models(Member, data.get("members", [])),
            apps=[str(name) for name in data.get("apps", [])],
        )

    def delete_org(self, slug: str) -> None:
        """Destroy an organization (its admins or the operator); one that still has
        apps is refused with 409 naming them, ``personal`` with 400."""
        self._request("DELETE", f"/v1/orgs/{_seg(slug)}")

    def move_app(self, app: str, org_slug: str) -> App:
        """Give ``app`` to ``org_slug``; the app's deploy and read-only tokens end."""
        path = f"/v1/apps/{_seg(app)}/move"
        return parse_model(App, self._request("POST", path, body={"org_slug": org_slug}))

    # -- members and invitations ------------------------------------------------
    def list_members(self, slug: str) -> list[Member]:
        return parse_models(Member, self._request("GET", f"/v1/orgs/{_seg(slug)}/members"))

    def set_member_role(self, slug: str, email: str, role: Role) -> Member:
        """Make a member admin or member; demoting the last admin is 409."""
        path = f"/v1/orgs/{_seg(slug)}/members/{_seg(email)}"
        return parse_model(Member, self._request("PUT", path, body={"role": role.value}))

    def remove_member(self, slug: str, email: str) -> None:
        """Remove a member (their user token loses the organization at once); the
        last admin is refused with 409."""
        self._request("DELETE", f"/v1/orgs/{_seg(slug)}/members/{_seg(email)}")

    def invite(self, slug: str, email: str, role: Role = Role.MEMBER) -> NewInvitation:
        """Invite ``email`` as ``role`` (admins only); the value is good for 7 days, once."""
        path = f"/v1/orgs/{_seg(slug)}/invitations"
        body = {"email": email, "role": role.value}
        return _new_invitation(self._request("POST", path, body=body))

    def list_invitations(self, slug: str) -> list[Invitation]:
        """The organization's invitations, accepted or not, without their values."""
        path = f"/v1/orgs/{_seg(slug)}/invitations"
        return parse_models(Invitation, self._request("GET", path))

    def accept_invitation(self, invitation: str, *, token_name: str | None = None) -> Joined:
        """Accept an invitation; needs no token (the invitation is the credential).

        Returns the membership and the new user token (shown once). An unknown,
        used or expired invitation is 404.
        """
        body: dict[str, Any] = {"invitation": invitation.strip()}
        if token_name is not None:
            body["token_name"] = token_name
        data = _object(self._request("POST", "/v1/invitations/accept", body=body), "acceptance")
        return Joined(
            membership=parse_model(Invitation, data.get("membership")), token=_new_token(data)
        )

    # -- tokens -----------------------------------------------------------------
    def create_token(
        self,
        kind: TokenKind,
        *,
        name: str = "",
        org_slug: str | None = None,
        app_name: str | None = None,
        host_id: str | None = None,
        region: str | None = None,
        expiry: str | None = None,
    ) -> NewToken:
        """Create a token of ``kind`` (see ``TokenKind``): ``org`` needs ``org_slug``;
        ``deploy`` needs ``app_name``; ``readonly`` one of them; ``host`` needs
        ``host_id`` (and ``region``), ``edge`` a ``region`` (operator only).
        ``expiry`` is a duration like ``24h``; left out, the token does not expire."""
        body: dict[str, Any] = {"kind": kind.value, "name": name}
        scope = {
            "org_slug": org_slug,
            "app_name": app_name,
            "host_id": host_id,
            "region": region,
            "expiry": expiry,
        }
        body.update({key: value for key, value in scope.items() if value is not None})
        return _new_token(self._request("POST", "/v1/tokens", body=body))

    def list_tokens(self, org_slug: str | None = None) -> list[TokenInfo]:
        """Tokens without their secrets: an organization's (admins), or every one (the
        operator, when ``org_slug`` is left out)."""
        params = {"org_slug": org_slug}
        return parse_models(TokenInfo, self._request("GET", "/v1/tokens", params=params))

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Revoke a token at once (idempotent for one already revoked)."""
        data = self._request("DELETE", f"/v1/tokens/{_seg(token_id)}")
        return parse_model(TokenInfo, data)


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UnavailableError(f"the Ferry API sent no {what} object")
    return data


def _new_token(data: Any) -> NewToken:
    plain = _object(data, "token").get("token")
    if not isinstance(plain, str) or not plain:
        raise UnavailableError("the Ferry API created a token but did not send it")
    return NewToken(info=parse_model(TokenInfo, data), token=plain)


def _new_invitation(data: Any) -> NewInvitation:
    value = _object(data, "invitation").get("invitation")
    if not isinstance(value, str) or not value:
        raise UnavailableError("the Ferry API created an invitation but did not send it")
    return NewInvitation(invitation=parse_model(Invitation, data), value=value)
