"""What the audit trail records and under which organization: pure decisions.

No I/O here; ``ferry.server.audit`` (the ASGI middleware) gathers the facts of
one request and asks these functions. The rules (docs/audit.md):

- every call that is not ``GET``/``HEAD`` is recorded once its status is
  known, whether it succeeded, failed or was refused;
- a read is recorded only when it was refused (401, 403, 404) while naming an
  app or organization the caller may not see: another organization's probes;
- the agents' and edges' own traffic is not recorded (``/v1/hosts…``,
  ``/v1/edges/…``, ``/v1/routes``, and successful calls made with a host or
  edge credential): those are high-rate reports and watches, not changes by
  a person or a pipeline. Their refused attempts elsewhere are recorded.

A record belongs to the organization it touched: the named app's (so the
victim organization's admins see attempts against their apps), the one in a
``/v1/orgs/{slug}`` path, else the caller's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

from ferry.model.access import TokenKind
from ferry.model.audit import MAX_OUTCOME
from ferry.server.authz import Access, Principal, app_access, org_access

__all__ = [
    "UNAUTHENTICATED",
    "Target",
    "actor_of",
    "is_infrastructure",
    "might_record",
    "outcome_text",
    "record_org",
    "should_record",
]

#: The actor of a call whose token was missing or refused.
UNAUTHENTICATED = "unauthenticated"

_INFRASTRUCTURE = ("/v1/hosts/", "/v1/edges/")
_INFRASTRUCTURE_EXACT = frozenset({"/v1/hosts", "/v1/routes", "/v1/mesh"})
_DENIED = frozenset({401, 403, 404})
_AGENTS = frozenset({TokenKind.HOST.value, TokenKind.EDGE.value})


@dataclass(frozen=True)
class Target:
    """What the request named, resolved against the store.

    ``app_name``/``app_org``: the app in the path and its organization (``None``:
    no such app); ``org_slug``: an organization the path (or an ``org_slug``
    query on a listing) named, if it exists; ``noted_org``: what the route
    itself said the call touched (``ferry.server.audit.note_audit``).
    """

    app_name: str | None = None
    app_org: str | None = None
    org_slug: str | None = None
    noted_org: str | None = None


def is_infrastructure(path: str) -> bool:
    """Whether ``path`` is the agents' or edges' own API (never recorded)."""
    if path.startswith("/v1/hosts/join"):
        return False  # join tokens and joins are the operator's business: recorded
    return path in _INFRASTRUCTURE_EXACT or path.startswith(_INFRASTRUCTURE)


def might_record(method: str, status: int, principal: Principal | None) -> bool:
    """``False`` when the call is surely not recorded, decided without the store
    (every successful read, the agents' and edges' work)."""
    if principal is not None and principal.kind in _AGENTS and status < 400:
        return False
    return method not in ("GET", "HEAD") or status in _DENIED


def should_record(method: str, status: int, principal: Principal | None, target: Target) -> bool:
    """Whether a call that matched an API route goes into the trail (rules above)."""
    if not might_record(method, status, principal):
        return False
    if method not in ("GET", "HEAD"):
        return True
    if principal is None or status != 404:
        return target.app_org is not None or target.org_slug is not None
    # A 404 is another organization's probe only when the thing exists but is hidden.
    if target.app_name is not None and target.app_org is not None:
        return app_access(principal, target.app_name, target.app_org) is Access.NONE
    if target.org_slug is not None:
        return org_access(principal, target.org_slug) is Access.NONE
    return False


def record_org(principal: Principal | None, target: Target) -> str | None:
    """The organization whose trail shows the record (``None``: the operator's only)."""
    if target.noted_org is not None:
        return target.noted_org
    if target.app_org is not None:
        return target.app_org
    if target.org_slug is not None:
        return target.org_slug
    return None if principal is None else principal.org_slug


def actor_of(principal: Principal | None, noted: str | None = None) -> str:
    """Who made the call: the token's description (kind, name, email or organization)."""
    if principal is not None:
        return principal.describe()
    return noted or UNAUTHENTICATED


def outcome_text(status: int, body: bytes) -> str:
    """``ok`` for a success, else the error sentence of the JSON error body.

    Error sentences never hold secrets (the API's rule for every error); a
    body that is not Ferry's error shape gives the status' reason phrase.
    """
    if status < 400:
        return "ok"
    message = ""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, Mapping) and isinstance(parsed.get("error"), str):
        message = parsed["error"]
    if not message:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = f"status {status}"
    if len(message) > MAX_OUTCOME:
        message = message[: MAX_OUTCOME - 1] + "…"
    return message
