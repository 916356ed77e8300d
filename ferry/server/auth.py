"""Bearer tokens: the operator's admin token and the stored tokens of ``ferry.model.access``.

``Authenticator.principal`` turns the token of a request into a ``Principal``
(or ``AuthError``: missing, malformed, unknown, revoked, expired); the
``authorize`` dependency then spends one request of the caller's rate limit
(``RateLimited``, 429, when there is none left) and asks ``ferry.server.authz``
whether the matched route allows it. Token rows, roles and apps'
organizations come from an exact in-memory cache (``ferry.server.auth_cache``);
revocation and expiry are still checked against the clock on every request.
Comparisons are constant-time; secrets are never logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from ferry.errors import AuthError, RateLimited, UnavailableError
from ferry.model.access import TokenKind
from ferry.server import tokens
from ferry.server.auth_cache import AuthCache
from ferry.server.authz import OPERATOR, Principal, check, route_need
from ferry.server.clock import Clock
from ferry.server.ratelimit import RateLimit, RateLimiter, retry_after_header
from ferry.server.route_path import route_template
from ferry.store.access_base import AccessStore

__all__ = [
    "Authenticator",
    "RateLimits",
    "authorizer",
    "ensure_admin_token",
    "principal_of",
]

_HINT = (
    "send 'Authorization: Bearer <token>' (the admin token is in $FERRY_HOME/server/admin-token)"
)


@dataclass(frozen=True)
class RateLimits:
    """Requests per second per token: ``tokens`` for people's and CI's tokens, ``infra``
    for host and edge credentials (their own, higher budget: a fleet's reports must not
    starve). The operator's admin token is not limited. A rate of 0 turns a limit off."""

    tokens: RateLimit = field(default_factory=lambda: RateLimit(100.0, 200))
    infra: RateLimit = field(default_factory=lambda: RateLimit(1000.0, 2000))

    def of(self, p: Principal) -> RateLimit | None:
        """The limit ``p`` is under, ``None`` for the operator."""
        if p.is_operator:
            return None
        return self.infra if p.kind in (TokenKind.HOST, TokenKind.EDGE) else self.tokens


class Authenticator:
    """Resolves tokens against the admin token and the store's tokens (through ``cache``),
    and keeps each token's rate limit."""

    def __init__(
        self,
        store: AccessStore,
        admin_token: str,
        clock: Clock,
        *,
        limits: RateLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not admin_token:
            raise ValueError("admin_token must not be empty")
        self.cache = AuthCache(store)
        self._admin = admin_token.encode()
        self._clock = clock
        self.limits = limits or RateLimits()
        self._limiter = RateLimiter(monotonic)

    def spend(self, p: Principal) -> None:
        """Count one request of ``p``; ``RateLimited`` (429) when its bucket is empty."""
        limit = self.limits.of(p)
        if limit is None or p.token_id is None:
            return
        wait = self._limiter.take(p.token_id, limit)
        if wait > 0:
            seconds = retry_after_header(wait)
            option = "--infra-rate-limit" if limit is self.limits.infra else "--rate-limit"
            raise RateLimited(
                f"too many requests for {p.describe()}: the limit is "
                f"{limit.rate:g} per second (bursts of {limit.burst}); retry in {seconds} s",
                retry_after=wait,
                hint=f"slow down, or ask the operator to raise `ferry server {option}`",
            )

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
        found = self.cache.token(token_id)
        if found is None or not hmac.compare_digest(found.digest, tokens.digest(secret)):
            raise AuthError(
                "invalid token", hint="it was not issued by this cluster, or was deleted"
            )
        info = found.info
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
        return found.principal


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
    app name to its organization (``None``: no such app). Every request of a
    token counts against its rate limit, refused ones included (``RateLimited``).
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
        auth.spend(principal)
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
