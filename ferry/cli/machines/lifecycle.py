"""`ferry machine start|stop|suspend|restart|destroy ID`."""

from __future__ import annotations

import typer

from ferry.cli import context, output

_APP = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP)
_ID = typer.Argument(..., metavar="ID", help="Machine id")


def start(ctx: typer.Context, machine_id: str = _ID, app: str | None = _APP) -> None:
    """Start a stopped machine, or resume a suspended one."""
    app_name = context.resolve_app(app)
    previous = context.client(ctx).start_machine(app_name, machine_id)
    output.say(f"Machine {machine_id} is starting (was {previous or 'unknown'})")


def stop(
    ctx: typer.Context,
    machine_id: str = _ID,
    app: str | None = _APP,
    signal: str | None = typer.Option(
        None, "--signal", "-s", help="Signal to send instead of its kill_signal, e.g. SIGTERM"
    ),
    timeout: str | None = typer.Option(
        None,
        "--timeout",
        help="Wait this long before SIGKILL instead of its kill_timeout, e.g. 10s (or 10)",
    ),
) -> None:
    """Stop a machine: send its stop signal, then SIGKILL after the timeout.

    --signal and --timeout apply to this stop only; what they leave out
    comes from the machine's config (fly.toml kill_signal/kill_timeout).
    """
    app_name = context.resolve_app(app)
    context.client(ctx).stop_machine(app_name, machine_id, signal=signal, timeout=timeout)
    output.say(f"Machine {machine_id} is stopping")


def suspend(ctx: typer.Context, machine_id: str = _ID, app: str | None = _APP) -> None:
    """Suspend a started machine: freeze its processes, memory kept; `start` resumes it."""
    app_name = context.resolve_app(app)
    context.client(ctx).suspend_machine(app_name, machine_id)
    output.say(f"Machine {machine_id} is suspending")


def restart(
    ctx: typer.Context,
    machine_id: str = _ID,
    app: str | None = _APP,
    signal: str | None = typer.Option(None, "--signal", "-s", help="Signal to stop with"),
    timeout: str | None = typer.Option(None, "--timeout", help="Wait this long before SIGKILL"),
) -> None:
    """Restart a running machine."""
    app_name = context.resolve_app(app)
    context.client(ctx).restart_machine(app_name, machine_id, signal=signal, timeout=timeout)
    output.say(f"Machine {machine_id} is restarting")


def destroy(
    ctx: typer.Context,
    machine_id: str = _ID,
    app: str | None = _APP,
    force: bool = typer.Option(False, "--force", "-f", help="Kill it if it is running"),
) -> None:
    """Destroy a machine (a running one needs --force)."""
    app_name = context.resolve_app(app)
    context.client(ctx).delete_machine(app_name, machine_id, force=force)
    output.say(f"Machine {machine_id} is being destroyed")
