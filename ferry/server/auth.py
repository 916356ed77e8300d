"""Bearer tokens: the operator's admin token and the stored tokens of ``ferry.model.access``.

``Authenticator.principal`` turns the token of a request into a ``Principal``
(or ``AuthError``: missing, malformed, unknown, revoked, expired); the
``authorize`` dependency then asks ``ferry.server.authz`` whether the matched
route allows it. Comparisons are constant-time; secrets are never logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import Request

from ferry.errors import AuthError, UnavailableError
from ferry.model.access import TokenInfo, TokenKind
from ferry.server import tokens
from ferry.server.authz import OPERATOR, Principal, check, route_need
from ferry.server.clock import Clock
from ferry.server.route_path import route_template
from ferry.store.access_base import AccessStore

__all__ = ["Authenticator", "authorizer", "ensure_admin_token", "principal_of"]

_HINT = (
    "send 'Authorization: Bearer <token>' (the admin token is in $FERRY_HOME/server/admin-token)"
)


class Authenticator:
    """Resolves tokens against the admin token and the store's tokens."""

    def __init__(self, store: AccessStore, admin_token: str, clock: Clock) -> None:
        if not admin_token:
            raise ValueError("admin_token must not be empty")
        self._store = store
        self._admin = admin_token.encode()
        self._clock = clock

    def principal(self, plain: str | None) -> Principal:
        """The caller behind ``plain``; ``AuthError`` saying why it is refused."""
        if not plain:
            raise AuthError("missing token", hint=_HINT)
        if hmac.compare_digest(plain.encode(), self._admin):
            return OPERATOR
        parts = tokens.split(plain)
        if parts is None:
            raise AuthError(
                "malformed token: Ferry's tokens read fo1_<id>_<secret>",
                hint="copy the whole value `ferry tokens create` printed, or use the admin token",
            )
        token_id, secret = parts
        found = self._store.get_token(token_id)
        if found is None or not hmac.compare_digest(found[1], tokens.digest(secret)):
            raise AuthError(
                "invalid token", hint="it was not issued by this cluster, or was deleted"
            )
        info = found[0]
        now = self._clock.now()
        if info.revoked_at is not None:
            raise AuthError(
                f"token {info.name!r} was revoked at {info.revoked_at.isoformat()}",
                hint="create a new one with `ferry tokens create`",
            )
        if not info.usable_at(now):
            expired = info.expires_at.isoformat() if info.expires_at else "?"
            raise AuthError(
                f"token {info.name!r} expired at {expired}",
                hint="create a new one with `ferry tokens create`",
            )
        return self._principal(info)

    def _principal(self, info: TokenInfo) -> Principal:
        roles = (
            self._store.roles_of(info.email) if info.kind is TokenKind.USER and info.email else {}
        )
        return Principal(
            kind=info.kind.value,
            name=info.name,
            token_id=info.id,
            org_slug=info.org_slug,
            app_name=info.app_name,
            email=info.email,
            roles=roles,
            host_id=info.host_id,
            region=info.region,
        )


def principal_of(request: Request) -> Principal:
    """The caller ``authorize`` resolved for this request."""
    found = getattr(request.state, "principal", None)
    if not isinstance(found, Principal):  # pragma: no cover - every router has the dependency
        raise AuthError("request was not authenticated", hint=_HINT)
    return found


def authorizer(
    auth: Authenticator, app_org: Callable[[str], str | None]
) -> Callable[[Request], Awaitable[None]]:
    """The dependency every authenticated router carries.

    Resolves the caller, keeps it on ``request.state.principal`` and checks the
    matched route's need (``ferry.server.authz.route_need``). ``app_org`` maps an
    app name to its organization (``None``: no such app).
    """

    async def authorize(request: Request) -> None:
        header = request.headers.get("authorization")
        plain = tokens.from_authorization(header)
        if header and plain is None:
            raise AuthError(
                "the Authorization header must read 'Bearer <token>' or 'FlyV1 <token>'",
                hint=_HINT,
            )
        principal = auth.principal(plain)
        request.state.principal = principal
        if principal.is_operator:
            return
        need = route_need(route_template(request.scope) or "", request.method)
        params = {k: str(v) for k, v in request.path_params.items()}
        org = None
        if "app_name" in params:
            org = app_org(params["app_name"])
            request.state.app_org = org  # the audit trail's recorder reuses it
        check(principal, need, params, org)

    return authorize


def ensure_admin_token(path: Path) -> str:
    """Read the admin token at ``path``, creating it (mode 0600) at first start.

    Idempotent. Raises ``UnavailableError`` naming the file if it cannot be
    read or written.
    """
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if token:
                return token
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return token
    except OSError as exc:
        raise UnavailableError(
            f"cannot read or create the admin token {path}: {exc.strerror}",
            hint="check the permissions of $FERRY_HOME/server",
        ) from exc
