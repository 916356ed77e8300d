"""`ferry logs`: print (and by default keep following) the log lines of an app's machines."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import typer

from ferry.cli import context
from ferry.client import FerryClient
from ferry.errors import ApiError
from ferry.model import Machine

FOLLOW_POLL_SECONDS = 1.0
TAIL_LINES = 200


def new_log_lines(previous: Sequence[str], current: Sequence[str]) -> list[str]:
    """The lines of ``current`` not yet shown, given the window ``previous`` shown last time.

    The server keeps a sliding window of the last lines, so ``current`` is
    ``previous`` with some lines dropped at the front and some added at the
    back. The longest suffix of ``previous`` that begins ``current`` marks what
    was seen. When nothing overlaps, every line is new.
    """
    for overlap in range(min(len(previous), len(current)), 0, -1):
        if list(previous[-overlap:]) == list(current[:overlap]):
            return list(current[overlap:])
    return list(current)


def format_line(machine: Machine, line: str) -> str:
    return f"{machine.region} [{machine.id}] {line}"


class LogFollower:
    """Fetches each machine's window and emits only lines not emitted before.

    ``poll()`` is one round; blocking (one request per machine).
    """

    def __init__(self, client: FerryClient, app: str, machine_id: str | None) -> None:
        self._client = client
        self._app = app
        self._machine_id = machine_id
        self._seen: dict[str, list[str]] = {}

    def _machines(self) -> list[Machine]:
        if self._machine_id:
            return [self._client.get_machine(self._app, self._machine_id)]
        return self._client.list_machines(self._app)

    def poll(self, emit: Callable[[str], None]) -> int:
        """Emit new lines of every machine; returns how many were emitted."""
        emitted = 0
        for machine in self._machines():
            try:
                window = self._client.machine_logs(self._app, machine.id, tail=TAIL_LINES)
            except ApiError as exc:
                if exc.status == 404:  # destroyed between the list and this call
                    continue
                raise
            for line in new_log_lines(self._seen.get(machine.id, []), window):
                emit(format_line(machine, line))
                emitted += 1
            self._seen[machine.id] = window
        return emitted


def logs_command(
    ctx: typer.Context,
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    machine_id: str | None = typer.Option(
        None, "--machine", "-i", "--instance", help="Only this machine"
    ),
    no_tail: bool = typer.Option(False, "--no-tail", "-n", help="Print what is there and exit"),
    follow: bool = typer.Option(True, "--follow", "-f", help="Keep printing new lines (default)"),
) -> None:
    """Show the logs of an app's machines; follows new lines until Ctrl-C unless --no-tail."""
    app_name = context.resolve_app(app)
    follower = LogFollower(context.client(ctx), app_name, machine_id)
    follower.poll(typer.echo)
    if no_tail or not follow:
        return
    try:
        while True:
            time.sleep(FOLLOW_POLL_SECONDS)
            follower.poll(typer.echo)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
