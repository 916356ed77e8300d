"""`ferry machine list` and `ferry machine status ID`."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from ferry.cli import context, output
from ferry.model import Machine


def list_machines(
    ctx: typer.Context,
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API objects as JSON"),
) -> None:
    """List the machines of an app."""
    app_name = context.resolve_app(app)
    machines = context.client(ctx).list_machines(app_name)
    if as_json:
        output.print_json(machines)
        return
    if not machines:
        output.say(f"{app_name} has no machines. Deploy with `ferry deploy`.")
        return
    output.stdout().print(
        output.machines_table(machines, title=f"{app_name}: {len(machines)} machines")
    )


def status(
    ctx: typer.Context,
    machine_id: str = typer.Argument(..., metavar="ID", help="Machine id"),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API object as JSON"),
) -> None:
    """Show one machine: its state, config and recent events."""
    app_name = context.resolve_app(app)
    machine = context.client(ctx).get_machine(app_name, machine_id)
    if as_json:
        output.print_json(machine)
        return
    console = output.stdout()
    console.print(output.key_values(describe(machine)))
    if machine.events:
        console.print()
        rows = [
            (event.type, event.status, event.source, _when(event.timestamp))
            for event in sorted(machine.events, key=lambda e: e.timestamp, reverse=True)[:10]
        ]
        console.print(output.simple_table(("EVENT", "STATUS", "SOURCE", "WHEN"), rows))


def describe(machine: Machine) -> list[tuple[str, str]]:
    """The fields `machine status` shows, in reading order."""
    guest = machine.config.effective_guest
    rows = [
        ("ID", machine.id),
        ("Name", machine.name),
        ("App", machine.app_name),
        ("Region", machine.region),
        ("State", f"{machine.state.value} (desired {machine.desired_state.value})"),
        ("Image", machine.config.image),
        ("Instance", machine.instance_id),
        ("Private IP", machine.private_ip),
        ("Host", f"{machine.host_id} (host-local address {machine.host_ip})"),
        ("Size", f"{guest.cpu_kind} {guest.cpus} cpu, {guest.memory_mb} MB"),
        ("Checks", output.checks_summary(machine)),
        ("Restarts", str(machine.restart_count)),
        ("Updated", output.ago(machine.updated_at)),
    ]
    if machine.exit_code is not None:
        rows.append(("Exit code", str(machine.exit_code)))
    return rows


def _when(timestamp_ms: int) -> str:
    return output.ago(datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC))
