"""`ferry ips list|allocate-v6|allocate-v4|release`: an app's IP addresses, as flyctl's verbs.

Ferry assigns Flycast addresses only (`allocate-v6 --private`): a private IPv6
address of the app's organization's network that goes through the edge proxy
and answers as `<app>.flycast` (docs/networking.md). Public addresses are
refused by the control plane with the reason: every app is already served on
the edges' shared address by its host name.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from ferry.cli import context, output
from ferry.model.flycast import PRIVATE_V6, IPAssignment

app = typer.Typer(help="An app's IP addresses: Flycast (private, through the edge proxy).")

_JSON_HELP = "Print the API answer as JSON"


def _table(ips: Sequence[IPAssignment]) -> None:
    rows = [
        (
            "v6",
            ip.ip,
            "private" if ip.type == PRIVATE_V6 else ip.type,
            ip.region,
            f"{ip.network.org_slug}/{ip.network.name or 'default'}" if ip.network else "",
            output.ago(ip.created_at),
        )
        for ip in ips
    ]
    columns = ("VERSION", "IP", "TYPE", "REGION", "NETWORK", "CREATED AT")
    output.stdout().print(output.simple_table(columns, rows))


@app.command("list")
def list_ips(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """The app's addresses."""
    name = context.resolve_app(app_name)
    found = context.client(ctx).list_ip_assignments(name)
    if as_json:
        output.print_json({"ips": found})
        return
    if not found:
        output.say(f"{name} has no IP addresses; add a Flycast one with "
                   f"`ferry ips allocate-v6 --private -a {name}`.")  # fmt: skip
        return
    _table(found)


@app.command("allocate-v6")
def allocate_v6(
    ctx: typer.Context,
    private: bool = typer.Option(False, "--private", help="A private (Flycast) address"),
    org: str = typer.Option("", "--org", "-o", help="The app's organization (checked)"),
    network: str = typer.Option("", "--network", help="6PN network (only the default)"),
    region: str = typer.Option("", "--region", "-r", help="Not for Flycast: it is global"),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help=_JSON_HELP),
) -> None:
    """Allocate an IPv6 address; with --private, a Flycast address (`<app>.flycast`)."""
    name = context.resolve_app(app_name)
    kind = PRIVATE_V6 if private else "v6"
    ip = context.client(ctx).assign_ip(name, kind, org_slug=org, network=network, region=region)
    if as_json:
        output.print_json(ip)
        return
    _table([ip])
    output.stderr().print(
        f"Machines of {ip.network.org_slug if ip.network else 'its organization'} reach "
        f"{name} at http://{name}.flycast/ through the edge proxy."
    )


@app.command("allocate-v4")
def allocate_v4(
    ctx: typer.Context,
    shared: bool = typer.Option(False, "--shared", help="A shared IPv4 address"),
    region: str = typer.Option("", "--region", "-r", help="Region of a dedicated address"),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
) -> None:
    """Allocate an IPv4 address (refused: apps are served on the edges' shared address)."""
    name = context.resolve_app(app_name)
    kind = "shared_v4" if shared else "v4"
    context.client(ctx).assign_ip(name, kind, region=region)  # the API says why it refuses


@app.command("release")
def release(
    ctx: typer.Context,
    address: str = typer.Argument(..., metavar="ADDRESS", show_default=False),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
) -> None:
    """Release an address of the app: it stops answering at once."""
    name = context.resolve_app(app_name)
    released = context.client(ctx).release_ip(name, address)
    output.say(f"Released {released.ip} from {name}")
