"""Where the client finds the API and its token: environment first, then the token file."""

from __future__ import annotations

import os
from pathlib import Path

from ferry.errors import AuthError

DEFAULT_API_URL = "http://127.0.0.1:4280"
DEFAULT_FERRY_HOME = "/var/lib/ferry"


def ferry_home() -> Path:
    """``$FERRY_HOME``, default ``/var/lib/ferry``."""
    return Path(os.environ.get("FERRY_HOME") or DEFAULT_FERRY_HOME)


def admin_token_path() -> Path:
    """The file the control plane writes its admin token to at first start."""
    return ferry_home() / "server" / "admin-token"


def default_api_url() -> str:
    """``$FERRY_API_URL``, default ``http://127.0.0.1:4280``, without a trailing slash."""
    return (os.environ.get("FERRY_API_URL") or DEFAULT_API_URL).rstrip("/")


def read_admin_token(path: Path | None = None) -> str:
    """Read the admin token from ``path`` (default: :func:`admin_token_path`).

    Raises ``AuthError`` naming the file when it is missing, unreadable or empty.
    """
    path = path or admin_token_path()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise AuthError(
            f"no admin token at {path}: the cluster has not been started here",
            hint="start it with `ferry cluster up`, or set FERRY_HOME to where it runs",
        ) from None
    except PermissionError:
        raise AuthError(
            f"cannot read the admin token at {path}: permission denied",
            hint="run as the user that started the cluster, or set FERRY_API_TOKEN",
        ) from None
    except OSError as exc:
        raise AuthError(f"cannot read the admin token at {path}: {exc.strerror}") from exc
    if not token:
        raise AuthError(f"the admin token file {path} is empty", hint="restart the control plane")
    return token


#: Where the token comes from, first match wins: Ferry's own variable, then flyctl's,
#: so a shell set up for flyctl works and an explicit Ferry token is never overridden.
TOKEN_VARIABLES = ("FERRY_API_TOKEN", "FLY_API_TOKEN")


def default_token() -> str | None:
    """``$FERRY_API_TOKEN``, else ``$FLY_API_TOKEN``, else the admin token file if it can
    be read, else ``None``. Blank variables count as unset."""
    for variable in TOKEN_VARIABLES:
        token = (os.environ.get(variable) or "").strip()
        if token:
            return token
    try:
        return read_admin_token()
    except AuthError:
        return None
