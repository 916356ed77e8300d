"""An exact in-memory copy of what authentication reads on every request.

``Authenticator`` needs, per request, the token's row (and a user's roles)
and, for app routes, the app's organization. Reading them from the store each
time costs more than the rest of a list call's authorization; this cache
keeps them in memory and stays exact because it is told of every change:

- ``AccessService`` (the only writer of tokens, members, organizations and
  app moves) calls ``invalidate`` after each change it commits;
- ``AppService`` calls ``invalidate`` after creating or deleting an app.

``invalidate`` drops everything (changes are rare next to reads, and a
whole drop cannot miss a dependent entry). A read that raced a change is not
kept: each fill remembers the generation it started in and is discarded if
an ``invalidate`` came in between, so the very next request after a change
sees the store. What is cached is the row, never a decision: revocation,
expiry (against the clock) and the secret's digest are checked on every
request by ``Authenticator``.

It assumes this process is the store's only writer (one control plane over
SQLite). Unknown token ids and missing apps are not cached (their keys are
chosen by callers); the two maps are bounded and emptied when full.

Thread-safe: reads and fills take one lock for a dictionary operation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from ferry.model.access import Role, TokenInfo, TokenKind
from ferry.server.authz import Principal
from ferry.store.access_base import AccessStore

__all__ = ["AuthCache", "CachedToken", "principal_for"]

MAX_ENTRIES = 10_000
_V = TypeVar("_V")


@dataclass(frozen=True)
class CachedToken:
    """A stored token: its row, its secret's digest and the caller it stands for."""

    info: TokenInfo
    digest: str
    principal: Principal


def principal_for(info: TokenInfo, roles: Mapping[str, Role] | None = None) -> Principal:
    """The ``Principal`` of a stored token (``roles``: a user token's memberships)."""
    return Principal(
        kind=info.kind.value,
        name=info.name,
        token_id=info.id,
        org_slug=info.org_slug,
        app_name=info.app_name,
        email=info.email,
        roles=dict(roles or {}),
        host_id=info.host_id,
        region=info.region,
    )


class AuthCache:
    """Token rows with their principals, and apps' organizations, by key."""

    def __init__(self, store: AccessStore, max_entries: int = MAX_ENTRIES) -> None:
        self._store = store
        self._max = max_entries
        self._lock = threading.Lock()
        self._generation = 0
        self._tokens: dict[str, CachedToken] = {}
        self._app_orgs: dict[str, str] = {}
        self.fills = 0  # store reads made to fill the cache (tests and benchmarks read it)

    def token(self, token_id: str) -> CachedToken | None:
        """The stored token ``token_id`` (``None``: no such token). Blocks on a miss."""
        with self._lock:
            found = self._tokens.get(token_id)
            generation = self._generation
        if found is not None:
            return found
        row = self._store.get_token(token_id)
        if row is None:
            return None
        info, digest = row
        roles = (
            self._store.roles_of(info.email) if info.kind is TokenKind.USER and info.email else {}
        )
        entry = CachedToken(info, digest, principal_for(info, roles))
        self._keep(self._tokens, token_id, entry, generation)
        return entry

    def app_org(self, app_name: str) -> str | None:
        """The organization of ``app_name`` (``None``: no such app). Blocks on a miss."""
        with self._lock:
            found = self._app_orgs.get(app_name)
            generation = self._generation
        if found is not None:
            return found
        org = self._store.app_org(app_name)
        if org is not None:
            self._keep(self._app_orgs, app_name, org, generation)
        return org

    def invalidate(self, *_changed: object) -> None:
        """Forget everything; reads already under way are not kept. Any arguments
        (what changed) are accepted and ignored, so it fits every listener hook."""
        with self._lock:
            self._generation += 1
            self._tokens.clear()
            self._app_orgs.clear()

    def __len__(self) -> int:
        return len(self._tokens) + len(self._app_orgs)

    def _keep(self, entries: dict[str, _V], key: str, value: _V, generation: int) -> None:
        with self._lock:
            self.fills += 1
            if generation != self._generation:
                return  # a change committed while we read: this value may be stale
            if len(entries) >= self._max:
                entries.clear()
            entries[key] = value
