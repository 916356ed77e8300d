"""Everything the CLI prints: errors, JSON, tables of machines, short human values.

Consoles are made per call so they follow the current stdout/stderr and
``COLUMNS`` (which is what Typer's test runner swaps).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pydantic
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ferry.errors import FerryError
from ferry.model import Machine

_STATE_STYLES = {
    "started": "green",
    "failed": "red",
    "stopped": "yellow",
    "suspended": "cyan",
    "destroyed": "dim",
    "destroying": "dim",
}


def _width() -> int | None:
    # Piped output (scripts, CI logs) gets room for whole tables instead of rich's 80 columns.
    return None if sys.stdout.isatty() else 200


def stdout() -> Console:
    return Console(highlight=False, width=_width())


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str, style: str | None = None) -> None:
    """One progress or result line on stdout; ``message`` is plain text, never markup."""
    stdout().print(Text(message, style=style or ""), soft_wrap=True)


def print_error(error: FerryError) -> None:
    """``Error: <message>`` in red, then the hint dimmed, on stderr."""
    console = stderr()
    line = Text("Error: ", style="bold red")
    line.append(error.message, style="red")
    console.print(line)
    if error.hint:
        console.print(Text(error.hint, style="dim"))


def print_json(value: Any) -> None:
    """Machine-readable output: models and lists of models dumped as the API sends them."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, sort_keys=False))


def to_jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``-`` when unknown."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def short_digest(image: str) -> str:
    """``reg/app@sha256:0123456789ab…`` → ``sha256:0123456789ab``; tags and names pass through."""
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1][:12]
    return image


def checks_summary(machine: Machine) -> str:
    """``2/2 passing``, ``1/2 passing, 1 critical`` or ``-`` when the machine has no checks."""
    if not machine.checks:
        return "-"
    total = len(machine.checks)
    passing = sum(1 for check in machine.checks if check.status == "passing")
    critical = sum(1 for check in machine.checks if check.status == "critical")
    text = f"{passing}/{total} passing"
    return f"{text}, {critical} critical" if critical else text


def state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLES.get(state, ""))


def machines_table(machines: Sequence[Machine], *, title: str | None = None) -> Table:
    """The table ``ferry status`` and ``ferry machine list`` show."""
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column in ("ID", "NAME", "REGION", "STATE", "IMAGE", "VERSION", "IP", "CHECKS", "HOST"):
        table.add_column(column, no_wrap=column in ("ID", "VERSION", "IP"))
    table.add_column("UPDATED", no_wrap=True)
    for machine in sorted(machines, key=lambda m: (m.region, m.created_at, m.id)):
        table.add_row(
            machine.id,
            machine.name,
            machine.region,
            state_text(machine.state.value),
            short_digest(machine.config.image),
            machine.instance_id,
            machine.private_ip,
            checks_summary(machine),
            machine.host_id,
            ago(machine.updated_at),
        )
    return table


def simple_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A borderless table with a header row, as flyctl prints lists."""
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def key_values(rows: Iterable[tuple[str, str]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table
