"""`ferry apps create|list|destroy|move`."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="Create, list and destroy apps.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The app name: lowercase letters, digits and dashes"),
    org: str | None = typer.Option(
        None, "--org", "-o", help="Organization slug (default: your only one; operator: personal)"
    ),
    network: str = typer.Option(
        "default", "--network", help='Private network of the app (only "default")'
    ),
) -> None:
    """Create an app."""
    created = context.client(ctx).create_app(name, org_slug=org, network=network)
    output.say(f"New app created: {created.name} (organization {created.organization.slug})")


@app.command("list")
def list_apps(
    ctx: typer.Context,
    org: str | None = typer.Option(
        None, "--org", "-o", help="Organization slug (default: every app you can see)"
    ),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """List the apps you can see, or those of one organization."""
    apps = context.client(ctx).list_apps(org_slug=org)
    if as_json:
        output.print_json(apps)
        return
    if not apps:
        output.say("No apps yet. Create one with `ferry apps create NAME` or `ferry deploy`.")
        return
    rows = [
        (a.name, a.organization.slug, a.status, str(a.machine_count), output.ago(a.created_at))
        for a in sorted(apps, key=lambda a: a.name)
    ]
    columns = ("NAME", "OWNER", "STATUS", "MACHINES", "CREATED")
    output.stdout().print(output.simple_table(columns, rows))


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The app to destroy"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Destroy an app and every machine of it (running machines are killed)."""
    client = context.client(ctx)
    try:
        client.get_app(name)
    except ApiError as exc:
        if exc.status == 404:
            raise ApiError(
                f"app {name!r} does not exist", status=404, hint="see `ferry apps list`"
            ) from exc
        raise
    if not yes and not typer.confirm(
        f"Destroy app {name} and all its machines? This cannot be undone", default=False
    ):
        raise typer.Exit(1)
    client.delete_app(name, force=True)
    output.say(f"Destroyed app {name}")


@app.command("move")
def move(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="The app to move (default: -a, $FLY_APP)"),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    to_org: str = typer.Option(..., "--to", "--org", "-o", help="The organization to move it to"),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation"),
) -> None:
    """Give an app to another organization (you must be able to change it and to create
    apps there). Its deploy and read-only app tokens stop working; machines keep running."""
    target = context.resolve_app(name or app_name)
    client = context.client(ctx)
    current = client.get_app(target).organization.slug
    if current == to_org:
        output.say(f"App {target} is already in organization {to_org}: nothing to do")
        return
    if not yes and not typer.confirm(
        f"Move app {target} from {current} to {to_org}? Its app tokens stop working",
        default=False,
    ):
        raise typer.Exit(1)
    moved = client.move_app(target, to_org)
    output.say(f"Moved app {moved.name} from {current} to {moved.organization.slug}")
