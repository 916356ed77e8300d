"""`ferry auth token`: show the admin token the control plane created."""

from __future__ import annotations

import typer

from ferry.client import read_admin_token

app = typer.Typer(no_args_is_help=True, help="Credentials of the Ferry API.")


@app.command("token")
def token() -> None:
    """Print the admin token (read from $FERRY_HOME/server/admin-token)."""
    typer.echo(read_admin_token())
