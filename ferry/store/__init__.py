"""The control plane's durable state: one ``StateStore`` Protocol, backends chosen by URL.

``open_store("")`` opens ``$FERRY_HOME/server/state.db``; ``sqlite:///path``
opens that file (``sqlite:////abs/path`` for an absolute path, as SQLAlchemy
writes it, or ``sqlite:///relative``). PostgreSQL is planned, not yet here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ferry.errors import ValidationError
from ferry.store.base import HostSnapshot, StateStore
from ferry.store.sqlite import SqliteStore

__all__ = ["HostSnapshot", "SqliteStore", "StateStore", "default_store_path", "open_store"]

_DEFAULT_HOME = "/var/lib/ferry"


def default_store_path() -> Path:
    """``$FERRY_HOME/server/state.db`` (``FERRY_HOME`` defaults to ``/var/lib/ferry``)."""
    return Path(os.environ.get("FERRY_HOME") or _DEFAULT_HOME) / "server" / "state.db"


def open_store(url: str | None = "") -> StateStore:
    """Open the store named by ``url`` and apply pending migrations. Blocking.

    Raises ``ValidationError`` for an unknown or unsupported scheme (with the
    accepted forms in the hint) and ``UnavailableError`` when the database
    cannot be opened.
    """
    url = (url or "").strip()
    if not url:
        return SqliteStore(default_store_path())
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValidationError(
            f"store URL {url!r} has no scheme", hint="write sqlite:///path/to/state.db"
        )
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise ValidationError(
                f"store URL {url!r} names no database file",
                hint="write sqlite:///relative/state.db or sqlite:////absolute/state.db",
            )
        return SqliteStore(Path(path))
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        raise ValidationError(
            "PostgreSQL stores are not supported yet",
            hint="use sqlite:///path/to/state.db, or leave the store URL empty for the default",
        )
    raise ValidationError(
        f"unknown store URL scheme {scheme!r}", hint="use sqlite:///path/to/state.db"
    )
