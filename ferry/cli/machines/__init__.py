"""`ferry machine …` (alias `machines`): run and manage single machines."""

from __future__ import annotations

import typer

from ferry.cli.machines import inspect, labels, lifecycle, ps, run

app = typer.Typer(no_args_is_help=True, help="Run and manage individual machines.")
app.command("run")(run.run)
app.command("list")(inspect.list_machines)
app.command("status")(inspect.status)
app.command("start")(lifecycle.start)
app.command("stop")(lifecycle.stop)
app.command("suspend")(lifecycle.suspend)
app.command("restart")(lifecycle.restart)
app.command("destroy")(lifecycle.destroy)
app.command("cordon")(labels.cordon)
app.command("uncordon")(labels.uncordon)
app.command("lease")(labels.lease)
app.command("metadata")(labels.metadata)
app.command("ps")(ps.ps)

__all__ = ["app"]
