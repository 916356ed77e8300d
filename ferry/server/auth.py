"""Bearer-token authentication: one admin token, compared in constant time."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ferry.errors import AuthError, UnavailableError

__all__ = ["ensure_admin_token", "token_checker"]

_bearer = HTTPBearer(auto_error=False, description="the admin token")


def token_checker(admin_token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A FastAPI dependency raising ``AuthError`` unless the request carries ``admin_token``."""
    expected = admin_token.encode()

    def check_token(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> None:
        given = credentials.credentials.strip().encode() if credentials else b""
        if not given or not hmac.compare_digest(given, expected):
            raise AuthError(
                "missing or invalid token",
                hint="send 'Authorization: Bearer <token>'; "
                "the admin token is in $FERRY_HOME/server/admin-token",
            )

    return check_token


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
