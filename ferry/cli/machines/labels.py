"""`ferry machine cordon|uncordon|lease|metadata ID`: Fly's machine labels and leases."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ferry.cli import context, output
from ferry.errors import ValidationError
from ferry.model.lease import MachineLease

_APP = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP)
_ID = typer.Argument(..., metavar="ID", help="Machine id")


def cordon(ctx: typer.Context, machine_id: str = _ID, app: str | None = _APP) -> None:
    """Stop sending the machine new requests from the edges (it keeps running)."""
    app_name = context.resolve_app(app)
    context.client(ctx).cordon_machine(app_name, machine_id)
    output.say(f"Machine {machine_id} is cordoned: the edges send it no new requests")


def uncordon(ctx: typer.Context, machine_id: str = _ID, app: str | None = _APP) -> None:
    """Let the edges send the machine requests again."""
    app_name = context.resolve_app(app)
    context.client(ctx).uncordon_machine(app_name, machine_id)
    output.say(f"Machine {machine_id} is uncordoned")


def _describe(lease: MachineLease) -> str:
    until = datetime.fromtimestamp(lease.expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    what = f" ({lease.description})" if lease.description else ""
    return f"nonce {lease.nonce}, held by {lease.owner}{what} until {until}"


def lease(
    ctx: typer.Context,
    machine_id: str = _ID,
    app: str | None = _APP,
    acquire: bool = typer.Option(False, "--acquire", help="Take the lease (or refresh yours)"),
    ttl: int | None = typer.Option(None, "--ttl", help="Seconds the lease lasts (default 30)"),
    description: str | None = typer.Option(None, "--description", help="Why you hold it"),
    nonce: str | None = typer.Option(None, "--nonce", help="Your lease's nonce (to refresh)"),
    release: str | None = typer.Option(None, "--release", metavar="NONCE", help="Release it"),
) -> None:
    """Show the machine's lease; --acquire takes it, --release NONCE gives it up."""
    app_name = context.resolve_app(app)
    client = context.client(ctx)
    if acquire and release:
        raise ValidationError("give either --acquire or --release, not both")
    if release:
        client.release_lease(app_name, machine_id, release)
        output.say(f"Released the lease of machine {machine_id}")
        return
    if acquire:
        taken = client.acquire_lease(
            app_name, machine_id, ttl=ttl, description=description, nonce=nonce
        )
        output.say(f"Lease of machine {machine_id}: {_describe(taken)}")
        return
    if ttl is not None or description is not None or nonce is not None:
        raise ValidationError("--ttl, --description and --nonce go with --acquire")
    held = client.get_lease(app_name, machine_id)
    output.say(f"Lease of machine {machine_id}: {_describe(held)}")


def metadata(
    ctx: typer.Context,
    machine_id: str = _ID,
    app: str | None = _APP,
    set_: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Set a key"),
    delete: list[str] = typer.Option([], "--delete", metavar="KEY", help="Delete a key"),
) -> None:
    """Show the machine's metadata; --set KEY=VALUE and --delete KEY change it (no restart)."""
    app_name = context.resolve_app(app)
    client = context.client(ctx)
    pairs = []
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--set {item!r} is not KEY=VALUE")
        pairs.append((key, value))
    for key, value in pairs:
        client.set_metadata(app_name, machine_id, key, value)
    for key in delete:
        client.delete_metadata(app_name, machine_id, key)
    for key, value in sorted(client.get_metadata(app_name, machine_id).items()):
        output.say(f"{key}={value}")
