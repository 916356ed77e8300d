"""`ferry status`: the app and a table of its machines."""

from __future__ import annotations

import typer

from ferry.cli import context, output


def status_command(
    ctx: typer.Context,
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """Show the app and every machine of it."""
    app_name = context.resolve_app(app)
    client = context.client(ctx)
    info = client.get_app(app_name)
    machines = client.list_machines(app_name)
    if as_json:
        output.print_json({"app": info, "machines": machines})
        return
    console = output.stdout()
    console.print(
        output.key_values(
            [
                ("App", info.name),
                ("Owner", info.organization.slug),
                ("Status", info.status),
                ("Machines", str(len(machines))),
            ]
        )
    )
    console.print()
    if machines:
        console.print(output.machines_table(machines))
    else:
        console.print("No machines. Deploy with `ferry deploy`.", markup=False)
