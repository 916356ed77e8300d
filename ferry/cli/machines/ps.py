"""`ferry machine ps ID`: the processes of a started machine, as its agent last saw them."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.model.processes import ProcessStat


def ps(
    ctx: typer.Context,
    machine_id: str = typer.Argument(..., metavar="ID", help="Machine id"),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    sort_by: str = typer.Option(
        "pid", "--sort-by", help="pid, stime, rtime, command, directory, cpu or rss"
    ),
    order: str = typer.Option("asc", "--order", help="asc or desc"),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """List the processes of a started machine (taken by its host's agent every 2 s)."""
    app_name = context.resolve_app(app)
    processes, age = context.client(ctx).machine_processes(
        app_name, machine_id, sort_by=sort_by, order=order
    )
    if as_json:
        output.print_json(processes)
        return
    console = output.stdout()
    console.print(
        output.simple_table(
            ("PID", "CPU%", "RSS", "UP", "DIR", "LISTEN", "COMMAND"), [_row(p) for p in processes]
        )
    )
    output.say(f"{len(processes)} processes, seen {age:.1f} s ago")


def _row(process: ProcessStat) -> tuple[str, ...]:
    listen = " ".join(s.address for s in process.listen_sockets)
    return (
        str(process.pid),
        str(process.cpu),
        f"{process.rss / 2**20:.1f}M",
        f"{process.rtime}s",
        process.directory,
        listen or "-",
        process.command,
    )
