"""`ferry apps create|list|destroy`."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.errors import ApiError

app = typer.Typer(no_args_is_help=True, help="Create, list and destroy apps.")


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The app name: lowercase letters, digits and dashes"),
    org: str = typer.Option("personal", "--org", "-o", help="Organization slug"),
    network: str = typer.Option("default", "--network", help="Private network of the app"),
) -> None:
    """Create an app."""
    created = context.client(ctx).create_app(name, org_slug=org, network=network)
    output.say(f"New app created: {created.name} (organization {created.organization.slug})")


@app.command("list")
def list_apps(
    ctx: typer.Context,
    org: str = typer.Option("personal", "--org", "-o", help="Organization slug"),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """List the apps of an organization."""
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
