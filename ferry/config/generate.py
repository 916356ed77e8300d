"""fly.toml text that `ferry launch` writes: a new file, or an existing one renamed.

Pure functions of their arguments; the caller writes the text. The new file
has the sections flyctl's launch writes that Ferry acts on (``app``,
``primary_region``, ``[build]``, ``[env]``, ``[http_service]``, ``[[vm]]``);
flyctl's ``force_https = true`` is left out: a launched app answers on both
HTTP and HTTPS until its owner adds it (docs/tls.md).
"""

from __future__ import annotations

import json
import re

__all__ = ["render_fly_toml", "retarget_fly_toml"]

_APP_LINE = re.compile(r"^(\s*)app\s*=.*$", re.MULTILINE)
_REGION_LINE = re.compile(r"^(\s*)primary_region\s*=.*$", re.MULTILINE)
_FIRST_TABLE = re.compile(r"^\s*\[", re.MULTILINE)


def _quote(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes for what names can hold).
    return json.dumps(value)


def render_fly_toml(
    app: str,
    primary_region: str,
    internal_port: int,
    *,
    env: dict[str, str] | None = None,
    family: str | None = None,
) -> str:
    """A new fly.toml for ``app``; ``[build]`` is empty so deploy builds ./Dockerfile."""
    lines = [
        f"# fly.toml for {app}, written by `ferry launch`"
        + (f" ({family} project)." if family else "."),
        "# Reference: docs/fly-toml.md. Deploy with `ferry deploy`.",
        "",
        f"app = {_quote(app)}",
        f"primary_region = {_quote(primary_region)}",
        "",
        "[build]",
        "",
    ]
    if env:
        lines.append("[env]")
        lines += [f"  {name} = {_quote(value)}" for name, value in sorted(env.items())]
        lines.append("")
    lines += [
        "[http_service]",
        f"  internal_port = {internal_port}",
        '  auto_stop_machines = "stop"',
        "  auto_start_machines = true",
        "  min_machines_running = 0",
        "",
        "[[vm]]",
        '  size = "shared-cpu-1x"',
        "",
    ]
    return "\n".join(lines)


def retarget_fly_toml(text: str, app: str, primary_region: str | None) -> str:
    """``text`` with its top-level ``app`` (and ``primary_region`` when given) set.

    Only the first top-level assignment of each key (before the first table
    header) is replaced; a missing one is added at the top. Everything else —
    comments, order, other keys — stays as the user wrote it.
    """
    table = _FIRST_TABLE.search(text)
    head_end = table.start() if table else len(text)
    head, rest = text[:head_end], text[head_end:]
    head = _set_line(head, _APP_LINE, "app", app)
    if primary_region is not None:
        head = _set_line(head, _REGION_LINE, "primary_region", primary_region)
    return head + rest


def _set_line(head: str, pattern: re.Pattern[str], key: str, value: str) -> str:
    line = f"{key} = {_quote(value)}"
    if pattern.search(head):
        return pattern.sub(lambda m: m.group(1) + line, head, count=1)
    return f"{line}\n{head}"
