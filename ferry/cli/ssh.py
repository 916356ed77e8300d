"""`ferry ssh console`: run a command inside one of an app's machines (flyctl's layout).

``-C CMD`` runs ``CMD`` through the Machines API's exec (``POST …/machines/{id}/exec``):
the control plane hands it to the machine's host agent, which runs it with ``runc
exec`` as the machine's own process runs (its env, user and namespaces). ``CMD`` is
split into arguments like a shell would, but no shell runs it: write
``-C "sh -c 'ps | grep web'"`` for pipes. Its stdout and stderr are printed as they
are and ``ferry`` exits with its exit code, as ``ssh`` does.

Without ``-C`` it opens an interactive shell on a terminal in the machine, relayed
through the control plane over WebSockets (``ferry.cli.ssh_terminal``, docs/ssh.md).
"""

from __future__ import annotations

import shlex
import sys

import typer

from ferry.cli import context
from ferry.cli.ssh_terminal import run_console, terminal_size
from ferry.client import FerryClient
from ferry.errors import ValidationError
from ferry.model import Machine, MachineState

app = typer.Typer(no_args_is_help=True, help="Run commands inside an app's machines.")


def choose_machine(machines: list[Machine], machine_id: str | None) -> Machine:
    """The machine a console goes to: ``machine_id`` if given, else the first started one
    (by region, then id). Raises ``ValidationError`` naming what is missing."""
    if machine_id is not None:
        for machine in machines:
            if machine.id == machine_id:
                return machine
        raise ValidationError(
            f"machine {machine_id!r} is not one of this app's machines",
            hint="list them with `ferry machine list`",
        )
    started = sorted(
        (m for m in machines if m.state is MachineState.STARTED), key=lambda m: (m.region, m.id)
    )
    if not started:
        raise ValidationError(
            "the app has no started machine to run the command in",
            hint="start one with `ferry machine start ID`",
        )
    return started[0]


def split_command(command: str) -> list[str]:
    """``-C``'s text as arguments, split like a shell would; ``ValidationError`` when it
    cannot be split or is empty."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ValidationError(
            f"cannot read the command: {exc}", hint="close its quotes, e.g. -C \"sh -c 'ls /'\""
        ) from None
    if not argv:
        raise ValidationError("the command is empty", hint='e.g. -C "ls -l /"')
    return argv


def _select(client: FerryClient, app_name: str) -> str:
    started = [m for m in client.list_machines(app_name) if m.state is MachineState.STARTED]
    if not started:
        choose_machine([], None)  # raises: nothing to select
    for number, machine in enumerate(started, 1):
        typer.echo(f"{number}) {machine.id} {machine.region} {machine.name}", err=True)
    picked: int = typer.prompt("Machine", type=int, default=1, err=True)
    if not 1 <= picked <= len(started):
        raise ValidationError(f"{picked} is not one of 1..{len(started)}")
    return started[picked - 1].id


@app.command("console")
def console(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    command: str | None = typer.Option(
        None, "--command", "-C", help="Command to run (split like a shell would; no shell)"
    ),
    select: bool = typer.Option(False, "--select", "-s", help="Pick the machine from a list"),
    machine_id: str | None = typer.Option(None, "--machine", help="Run in this machine"),
    timeout: int | None = typer.Option(
        None, "--timeout", help="Seconds the command may run (default 30, at most 300)"
    ),
    shell: str | None = typer.Option(
        None, "--shell-command", help="Shell of an interactive console (default: sh)"
    ),
) -> None:
    """Open a shell in one of the app's started machines, or run one command (-C)."""
    argv = split_command(command) if command is not None else []
    name = context.resolve_app(app_name)
    client = context.client(ctx)
    if select and machine_id is None:
        machine_id = _select(client, name)
    if machine_id is None:
        machine_id = choose_machine(client.list_machines(name), None).id
    if command is None:
        size = terminal_size()
        url, headers = client.console_address(
            name, machine_id, cols=size.columns, rows=size.lines, command=shell
        )
        raise typer.Exit(run_console(url, headers))
    answer = client.exec_machine(name, machine_id, argv, timeout=timeout)
    sys.stdout.write(answer.stdout)
    sys.stdout.flush()
    sys.stderr.write(answer.stderr)
    sys.stderr.flush()
    if answer.truncated:
        typer.echo("ferry: output cut at 1 MiB per stream", err=True)
    raise typer.Exit(answer.exit_code)
