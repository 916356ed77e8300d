"""`ferry regions list`."""

from __future__ import annotations

import typer

from ferry.cli import context, output

app = typer.Typer(no_args_is_help=True, help="Regions of the cluster.")


@app.command("list")
def list_regions(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """List the regions that have at least one host."""
    regions = context.client(ctx).regions()
    if as_json:
        output.print_json(regions)
        return
    if not regions:
        output.say("No regions: no host has registered yet. Is the cluster up?")
        return
    rows = [(region.code, region.name) for region in regions]
    output.stdout().print(output.simple_table(("CODE", "NAME"), rows))
