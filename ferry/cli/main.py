"""The `ferry` command: flyctl's layout (one module per noun, one function per verb).

Every ``FerryError`` a command raises is printed as ``Error: <message>`` plus
its hint on stderr and the exit status is 1; a traceback appears only with
``FERRY_DEBUG=1``.
"""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from ferry.cli import (
    apps,
    auth,
    autoscale,
    certs,
    cluster,
    config,
    context,
    daemons,
    host,
    ips,
    orgs,
    output,
    postgres,
    region,
    regions,
    releases,
    scale,
    scale_vm,
    secrets,
    ssh,
    tokens,
    volumes,
    waf,
    wireguard,
)
from ferry.cli.audit import audit_command
from ferry.cli.deploy import deploy_command
from ferry.cli.launch import launch_command
from ferry.cli.logs import logs_command
from ferry.cli.machines import app as machines_app
from ferry.cli.status import status_command
from ferry.errors import FerryError


class FerryGroup(TyperGroup):
    """The root group: turns ``FerryError`` into a one-line message and exit status 1,
    and gives every ``-a/--app`` option ``$FLY_APP`` as its fallback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        context.bind_app_environment(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as error:
            if os.environ.get("FERRY_DEBUG") == "1":
                raise
            output.print_error(error)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=FerryGroup,
    no_args_is_help=True,
    help="Ferry: deploy containers close to your users, the Fly.io way, on your own machines.",
    pretty_exceptions_enable=False,
)
app.add_typer(auth.app, name="auth")
app.add_typer(apps.app, name="apps")
app.add_typer(orgs.app, name="orgs")
app.add_typer(tokens.app, name="tokens")
app.add_typer(regions.app, name="regions")
app.add_typer(machines_app, name="machine")
app.add_typer(machines_app, name="machines", hidden=True)
scale.app.command("vm")(scale_vm.vm)
scale.app.command("memory")(scale_vm.memory)
app.add_typer(scale.app, name="scale", help="Change how many machines an app runs, and their size.")
app.add_typer(autoscale.app, name="autoscale")
app.command("launch")(launch_command)
app.command("deploy")(deploy_command)
app.add_typer(config.app, name="config")
app.add_typer(releases.app, name="releases")
app.add_typer(secrets.app, name="secrets")
app.add_typer(waf.app, name="waf")
app.add_typer(certs.app, name="certs")
app.add_typer(volumes.app, name="volumes")
app.add_typer(volumes.app, name="volume", hidden=True)
app.add_typer(volumes.app, name="vol", hidden=True)
app.add_typer(ips.app, name="ips")
app.add_typer(ssh.app, name="ssh")
app.command("status")(status_command)
app.command("logs")(logs_command)
app.command("audit")(audit_command)
app.add_typer(cluster.app, name="cluster")
app.add_typer(region.app, name="region")
app.add_typer(host.app, name="host")
app.add_typer(wireguard.app, name="wireguard")
app.add_typer(postgres.app, name="postgres")
app.command("server")(daemons.server_command)
app.command("agent")(daemons.agent_command)
app.command("proxy")(daemons.proxy_command)


def run() -> None:
    """Console-script entry point (`ferry`)."""
    app(prog_name="ferry")
