"""`ferry tokens create|list|revoke` (flyctl's `fly tokens`).

`tokens create KIND` prints the new token alone on stdout, so
`export FERRY_API_TOKEN=$(ferry tokens create deploy -a web)` works; what the
token is for goes to stderr. The token is shown this once: `tokens list`
never shows secrets (the server keeps only digests).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer
from rich.text import Text

from ferry.cli import context, output
from ferry.cli.orgs import JSON_HELP, timestamp
from ferry.client import FerryClient, NewToken
from ferry.errors import ApiError, ValidationError
from ferry.model.access import TokenInfo, TokenKind

app = typer.Typer(no_args_is_help=True, help="API tokens limited to what they are for.")
create_app = typer.Typer(
    no_args_is_help=True,
    help="Create a token (shown once): org, deploy, readonly; host and edge for operators.",
)
app.add_typer(create_app, name="create")

NAME_HELP = "A name to recognise the token by in `ferry tokens list`"
EXPIRY_HELP = "How long it works, e.g. 24h, 720h, 30m (default: until revoked)"
ORG_HELP = "Organization slug (default: your only organization)"


def _name() -> Any:
    return typer.Option("", "--name", "-n", help=NAME_HELP)


def _expiry() -> Any:
    return typer.Option(None, "--expiry", "-x", help=EXPIRY_HELP)


def _json() -> Any:
    return typer.Option(False, "--json", "-j", help=JSON_HELP)


def scope_of(info: TokenInfo) -> str:
    """What the token is limited to, in words (``app web``, ``org acme`` …)."""
    if info.app_name is not None:
        return f"app {info.app_name}"
    if info.kind is TokenKind.USER:
        return f"user {info.email}"
    if info.kind is TokenKind.HOST:
        return f"host {info.host_id} ({info.region})" if info.region else f"host {info.host_id}"
    if info.kind is TokenKind.EDGE:
        return f"edge {info.region}"
    return f"org {info.org_slug}"


def status_of(info: TokenInfo, now: datetime) -> str:
    if info.revoked_at is not None:
        return "revoked"
    return "active" if info.usable_at(now) else "expired"


def only_org(client: FerryClient, org: str | None) -> str:
    """``org`` if given, else the caller's one organization; ``ValidationError`` otherwise."""
    if org:
        return org
    slugs = sorted(found.slug for found in client.list_orgs())
    if len(slugs) == 1:
        return slugs[0]
    raise ValidationError(
        "name the organization with -o ORG",
        hint=f"your organizations: {', '.join(slugs) or 'none'}",
    )


def _created(created: NewToken, as_json: bool) -> None:
    """The token alone on stdout (or the whole answer as JSON); what it is on stderr."""
    if as_json:
        output.print_json({"token": created.token, **output.to_jsonable(created.info)})
        return
    info = created.info
    output.stderr().print(
        Text(
            f"Created {info.kind.value} token {info.id} ({info.name}) for {scope_of(info)}, "
            f"expires {timestamp(info.expires_at)}. It is shown once:",
            style="dim",
        )
    )
    typer.echo(created.token)


@create_app.command("org")
def create_org_token(
    ctx: typer.Context,
    org: str | None = typer.Option(None, "--org", "-o", help=ORG_HELP),
    name: str = _name(),
    expiry: str | None = _expiry(),
    as_json: bool = _json(),
) -> None:
    """A token for everything in one organization, as an admin (admins only)."""
    client = context.client(ctx)
    slug = only_org(client, org)
    created = client.create_token(TokenKind.ORG, name=name, org_slug=slug, expiry=expiry)
    _created(created, as_json)


@create_app.command("deploy")
def create_deploy_token(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    name: str = _name(),
    expiry: str | None = _expiry(),
    as_json: bool = _json(),
) -> None:
    """A token that deploys one app and manages its machines, and nothing else."""
    target = context.resolve_app(app_name)
    created = context.client(ctx).create_token(
        TokenKind.DEPLOY, name=name, app_name=target, expiry=expiry
    )
    _created(created, as_json)


@create_app.command("readonly")
def create_readonly_token(
    ctx: typer.Context,
    app_name: str | None = typer.Option(
        None, "--app", "-a", help="Read only this app (default: $FLY_APP; else the whole org)"
    ),
    org: str | None = typer.Option(None, "--org", "-o", help=ORG_HELP),
    name: str = _name(),
    expiry: str | None = _expiry(),
    as_json: bool = _json(),
) -> None:
    """A token that only reads: one app with -a, else one organization."""
    if app_name and org:
        raise ValidationError(
            "give -a APP or -o ORG, not both",
            hint="-a limits the token to one app, -o lets it read the organization",
        )
    client = context.client(ctx)
    if app_name:
        created = client.create_token(
            TokenKind.READONLY, name=name, app_name=app_name, expiry=expiry
        )
    else:
        slug = only_org(client, org)
        created = client.create_token(TokenKind.READONLY, name=name, org_slug=slug, expiry=expiry)
    _created(created, as_json)


@create_app.command("host")
def create_host_token(
    ctx: typer.Context,
    host_id: str = typer.Option(..., "--host-id", help="The host the agent runs as"),
    region: str = typer.Option(..., "--region", "-r", help="The host's region"),
    name: str = _name(),
    expiry: str | None = _expiry(),
    as_json: bool = _json(),
) -> None:
    """Operator: a host agent's credential (only that host's machines and reports)."""
    created = context.client(ctx).create_token(
        TokenKind.HOST, name=name or host_id, host_id=host_id, region=region, expiry=expiry
    )
    _created(created, as_json)


@create_app.command("edge")
def create_edge_token(
    ctx: typer.Context,
    region: str = typer.Option(..., "--region", "-r", help="The edge's region"),
    name: str = _name(),
    expiry: str | None = _expiry(),
    as_json: bool = _json(),
) -> None:
    """Operator: an edge proxy's credential (routes and its region's traffic reports)."""
    created = context.client(ctx).create_token(
        TokenKind.EDGE, name=name or f"edge-{region}", region=region, expiry=expiry
    )
    _created(created, as_json)


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    org: str | None = typer.Option(None, "--org", "-o", help=ORG_HELP),
    app_name: str | None = typer.Option(
        None, "--app", "-a", help="Only the tokens of this app (default: $FLY_APP)"
    ),
    as_json: bool = _json(),
) -> None:
    """List tokens (never their secrets): an organization's, an app's, or (operator) all."""
    client = context.client(ctx)
    if app_name:
        org = client.get_app(app_name).organization.slug
    try:
        found = client.list_tokens(org)
    except ApiError as error:
        if org is not None or error.status != 400:
            raise
        found = client.list_tokens(only_org(client, None))
    if app_name:
        found = [info for info in found if info.app_name == app_name]
    if as_json:
        output.print_json(found)
        return
    if not found:
        output.say("No tokens. Create one with `ferry tokens create deploy -a APP`.")
        return
    now = datetime.now(UTC)
    rows = [
        (
            info.id,
            info.name,
            info.kind.value,
            scope_of(info),
            output.ago(info.created_at, now),
            timestamp(info.expires_at),
            status_of(info, now),
        )
        for info in sorted(found, key=lambda info: (info.created_at, info.id))
    ]
    columns = ("ID", "NAME", "KIND", "SCOPE", "CREATED", "EXPIRES", "STATUS")
    output.stdout().print(output.simple_table(columns, rows))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    token_ids: list[str] = typer.Argument(..., help="IDs from `ferry tokens list`"),
) -> None:
    """Revoke tokens: they stop working at once."""
    client = context.client(ctx)
    for token_id in token_ids:
        info = client.revoke_token(token_id)
        output.say(f"Revoked token {info.id} ({info.name})")
