"""Who may do what: pure decisions over a caller (``Principal``) and a route.

No I/O here. ``ferry.server.auth`` resolves the bearer token into a
``Principal``; the routes' dependency asks ``route_need`` what the matched
route requires and ``check`` whether the caller has it. Denials follow Fly:
anything the caller may not even read answers 404 with the same message as a
missing one (nothing about its existence leaks); something it may read but
not change answers 403.

The policy is fail-closed: a route this table does not know is the
operator's alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from ferry.errors import ForbiddenError, NotFoundError
from ferry.model.access import Role, TokenKind

__all__ = [
    "OPERATOR",
    "Access",
    "Need",
    "NeedKind",
    "Principal",
    "app_access",
    "check",
    "org_access",
    "route_need",
]


class Access(IntEnum):
    """How much a caller may do with an organization or an app (ordered)."""

    NONE = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True)
class Principal:
    """The caller of one request. ``kind`` is ``operator`` or a ``TokenKind`` value."""

    kind: str
    name: str
    token_id: str | None = None
    org_slug: str | None = None
    app_name: str | None = None
    email: str | None = None
    roles: Mapping[str, Role] = field(default_factory=dict)
    host_id: str | None = None
    region: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"

    @property
    def who(self) -> str:
        """The name a lease's owner and a release's user show: a member's email (as Fly
        shows it), else the token's name; ``admin`` for the operator."""
        if self.is_operator:
            return "admin"
        return self.email or self.name

    def describe(self) -> str:
        """Who, for audit lines and error hints: never the secret."""
        if self.is_operator:
            return "the operator"
        owner = self.email or self.org_slug or self.host_id or self.region or ""
        return f"{self.kind} token {self.name!r}" + (f" ({owner})" if owner else "")


OPERATOR = Principal(kind="operator", name="operator")


def org_access(p: Principal, org_slug: str) -> Access:
    """What ``p`` may do with the organization itself (its apps list, members, tokens)."""
    if p.is_operator:
        return Access.ADMIN
    if p.kind == TokenKind.USER:
        role = p.roles.get(org_slug)
        return Access.NONE if role is None else Access.ADMIN if role is Role.ADMIN else Access.WRITE
    if p.org_slug != org_slug or p.app_name is not None:
        return Access.NONE
    if p.kind == TokenKind.ORG:
        return Access.ADMIN
    if p.kind == TokenKind.READONLY:
        return Access.READ
    return Access.NONE


def app_access(p: Principal, app_name: str, app_org: str) -> Access:
    """What ``p`` may do with one app of ``app_org`` (its machines, releases, settings)."""
    if p.kind in (TokenKind.DEPLOY, TokenKind.READONLY) and p.app_name is not None:
        if p.app_name != app_name or p.org_slug != app_org:
            return Access.NONE
        return Access.WRITE if p.kind == TokenKind.DEPLOY else Access.READ
    return min(org_access(p, app_org), Access.WRITE)


class NeedKind(IntEnum):
    OPERATOR = 0  # the cluster's admin token only
    ANY = 1  # any valid token (platform facts)
    APP_READ = 2  # read ``{app_name}``
    APP_WRITE = 3  # change ``{app_name}``
    HOST = 4  # the host ``{host_id}``'s agent
    EDGE = 5  # an edge (``{region}``'s when the path names one)
    WAKE = 6  # start a machine: the app's writers, or an edge waking it for a request
    ROUTE = 7  # the route itself decides (it needs the body or filters a list)


@dataclass(frozen=True)
class Need:
    kind: NeedKind


_APP = "/v1/apps/{app_name}"
_HOST = "/v1/hosts/{host_id}"


def route_need(path: str, method: str) -> Need:
    """What the route ``path`` (its template, as matched) needs for ``method``."""
    reading = method in ("GET", "HEAD")
    if path in ("/v1/apps", "/v1/orgs", "/v1/tokens") or path.startswith(
        ("/v1/orgs/", "/v1/tokens/", "/v1/invitations/")
    ):
        return Need(NeedKind.ROUTE)
    if path == f"{_APP}/machines/{{machine_id}}/start":
        return Need(NeedKind.WAKE)
    if path == _APP or path.startswith(_APP + "/"):
        return Need(NeedKind.APP_READ if reading else NeedKind.APP_WRITE)
    if path == "/v1/hosts" and method == "POST":
        return Need(NeedKind.ROUTE)  # registration: the body names the host
    if path.startswith(_HOST + "/"):
        return Need(NeedKind.HOST)
    if path == "/v1/routes" or path.startswith("/v1/edges/{region}/"):
        return Need(NeedKind.EDGE)
    if path == "/v1/mesh":
        return Need(NeedKind.ROUTE)  # hosts and edges: the route checks the credential's kind
    if path.startswith("/v1/platform/"):
        return Need(NeedKind.ANY)
    return Need(NeedKind.OPERATOR)


def check(
    p: Principal,
    need: Need,
    params: Mapping[str, str],
    app_org: str | None = None,
) -> None:
    """Raise unless ``p`` has ``need`` for the route's path ``params``.

    ``app_org`` is the organization of ``params['app_name']`` (``None``: no such
    app, which callers report as 404 themselves before or after this check).
    """
    if p.is_operator or need.kind in (NeedKind.ANY, NeedKind.ROUTE):
        return
    if need.kind in (NeedKind.APP_READ, NeedKind.APP_WRITE, NeedKind.WAKE):
        app = params.get("app_name", "")
        if need.kind is NeedKind.WAKE and p.kind == TokenKind.EDGE:
            return
        wanted = Access.READ if need.kind is NeedKind.APP_READ else Access.WRITE
        require_app(p, app, app_org, wanted)
        return
    if need.kind is NeedKind.HOST:
        if p.kind != TokenKind.HOST or p.host_id != params.get("host_id"):
            raise NotFoundError(
                f"host {params.get('host_id', '')!r} not found",
                hint="a host's credential acts for that host only",
            )
        return
    if need.kind is NeedKind.EDGE:
        region = params.get("region")
        if p.kind != TokenKind.EDGE or (region is not None and region != p.region):
            raise ForbiddenError(
                "only an edge's credential may do this"
                + (f" for region {region}" if region else ""),
                hint="edges use the credential the cluster gave them",
            )
        return
    raise ForbiddenError(
        f"{p.describe()} may not do this: it is the cluster operator's",
        hint="use the admin token in $FERRY_HOME/server/admin-token",
    )


def require_app(p: Principal, app_name: str, app_org: str | None, wanted: Access) -> None:
    """404 unless ``p`` may read the app; 403 unless it has ``wanted``."""
    got = Access.NONE if app_org is None else app_access(p, app_name, app_org)
    if got is Access.NONE:
        raise NotFoundError(
            f"app {app_name!r} not found", hint="list apps with `ferry apps list` or create it"
        )
    if got < wanted:
        raise ForbiddenError(
            f"{p.describe()} may only read app {app_name!r}",
            hint="use a deploy or organization token to change it",
        )


def require_org(p: Principal, org_slug: str, wanted: Access) -> None:
    """404 unless ``p`` may see the organization; 403 unless it has ``wanted``."""
    got = org_access(p, org_slug)
    if got is Access.NONE:
        raise NotFoundError(f"organization {org_slug!r} not found", hint="see `ferry orgs list`")
    if got < wanted:
        need = "an admin" if wanted is Access.ADMIN else "a member"
        raise ForbiddenError(
            f"{p.describe()} may not do this in {org_slug!r}: it needs {need} of it",
            hint="ask an admin of the organization",
        )
