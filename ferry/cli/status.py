"""`ferry status`: the app and a table of its machines."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

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
    traffic = client.app_traffic(app_name)
    if as_json:
        output.print_json({"app": info, "machines": machines, "traffic": traffic})
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
    if traffic:
        console.print()
        console.print(traffic_table(traffic))


def traffic_table(traffic: dict[str, Any]) -> Table:
    """Traffic per edge region, as the proxies last reported it (since each proxy started)."""
    table = Table(title="Traffic by edge region", title_justify="left", box=None)
    for column in ("EDGE", "REQUESTS", "2xx", "4xx", "5xx", "IN", "OUT", "P50", "P99"):
        table.add_column(column)
    for region, edge in sorted(traffic.items()):
        requests = edge.get("requests", {})
        table.add_row(
            region,
            str(sum(requests.values())),
            *(str(requests.get(k, 0)) for k in ("2xx", "4xx", "5xx")),
            _bytes(edge.get("bytes_in", 0)),
            _bytes(edge.get("bytes_out", 0)),
            _ms(edge.get("p50_ms")),
            _ms(edge.get("p99_ms")),
        )
    return table


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024:
            return f"{n}{unit}"
        n //= 1024
    return f"{n}GB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}ms"
