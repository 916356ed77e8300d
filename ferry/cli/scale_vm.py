"""`ferry scale vm SIZE` and `ferry scale memory MB`: resize every machine, one at a time.

Each machine is updated through the Machines API update route with its own
config and the new guest; a running machine is then waited for until its new
version is ``started`` before the next one is touched, so the app keeps
serving. A stopped machine keeps its state and uses the new size at its next
start. The first failure stops the roll: machines not reached keep their size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from ferry.cli import context, output
from ferry.client import FerryClient
from ferry.deploy.resize import (
    guest_for_size,
    guest_with_memory,
    machines_to_resize,
    resized_config,
    size_name,
)
from ferry.errors import ApiError, RuntimeFailure
from ferry.model import DesiredState, GuestConfig, Machine
from ferry.model.sizes import SIZE_PRESETS

#: Seconds a resized machine may take to be ``started`` again.
START_TIMEOUT = 120.0

_APP = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP)
_CONFIG = typer.Option(None, "--config", "-c", help="Path to fly.toml (for its app name)")
_GROUP = typer.Option(
    None, "--process-group", "--group", help="Only the machines of this process group"
)


def vm(
    ctx: typer.Context,
    size: str = typer.Argument(
        ..., metavar="SIZE", help="A size preset: " + ", ".join(SIZE_PRESETS)
    ),
    vm_memory: int | None = typer.Option(
        None, "--vm-memory", "--memory", help="Memory in MB instead of the preset's"
    ),
    app: str | None = _APP,
    config_path: Path | None = _CONFIG,
    process_group: str | None = _GROUP,
) -> None:
    """Change every machine of the app to a size preset (CPUs and memory)."""
    guest = guest_for_size(size, vm_memory)  # refused here, before any request
    app_name = context.resolve_app(app, config_path)
    _roll(ctx, app_name, process_group, lambda _: guest)
    output.say(
        f"{app_name} now runs {size} ({guest.cpus} {guest.cpu_kind} CPUs, {guest.memory_mb} MB)",
        style="green",
    )


def memory(
    ctx: typer.Context,
    memory_mb: int = typer.Argument(..., metavar="MB", help="Memory in MB, e.g. 512"),
    app: str | None = _APP,
    config_path: Path | None = _CONFIG,
    process_group: str | None = _GROUP,
) -> None:
    """Change the memory of every machine of the app, keeping its CPUs."""
    app_name = context.resolve_app(app, config_path)
    client = context.client(ctx)
    machines = machines_to_resize(client.list_machines(app_name), process_group)
    # Every machine's new guest is checked before the first one changes.
    guests = {m.id: guest_with_memory(m.config.effective_guest, memory_mb) for m in machines}
    _roll(ctx, app_name, process_group, lambda m: guests[m.id], machines)
    output.say(f"{app_name} now runs with {memory_mb} MB per machine", style="green")


def _roll(
    ctx: typer.Context,
    app_name: str,
    process_group: str | None,
    guest_of: Callable[[Machine], GuestConfig],
    machines: list[Machine] | None = None,
) -> None:
    client = context.client(ctx)
    if machines is None:
        machines = machines_to_resize(client.list_machines(app_name), process_group)
    for done, machine in enumerate(machines):
        guest = guest_of(machine)
        if machine.config.effective_guest == guest:
            output.say(f"Machine {machine.id} ({machine.region}) already has that size")
            continue
        try:
            _resize_one(client, app_name, machine, guest)
        except ApiError as exc:
            left = ", ".join(m.id for m in machines[done:])
            raise RuntimeFailure(
                f"resizing {machine.id} failed: {exc.message}",
                hint=(exc.hint + "; " if exc.hint else "")
                + f"not resized: {left} (they keep their size)",
            ) from exc


def _resize_one(client: FerryClient, app_name: str, machine: Machine, guest: GuestConfig) -> None:
    """Update one machine and, if it should run, wait until its new version is started."""
    output.say(
        f"Updating {machine.id} ({machine.region}) to {size_name(guest)}, {guest.memory_mb} MB …"
    )
    updated = client.update_machine(
        app_name,
        machine.id,
        resized_config(machine.config, guest),
        current_version=machine.instance_id,
    )
    if updated.desired_state is not DesiredState.STARTED:
        output.say(
            f"  {machine.id} is {updated.state.value}: the new size applies at its next start"
        )
        return
    client.wait_machine(
        app_name,
        machine.id,
        state="started",
        timeout=START_TIMEOUT,
        instance_id=updated.instance_id,
    )
    output.say(f"  {machine.id} started with the new size", style="green")
