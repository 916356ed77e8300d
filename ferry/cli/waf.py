"""`ferry waf events -a APP`: the requests the app's web application firewall matched (docs/waf.md).

The firewall itself is configured in fly.toml (``[waf]``) and changes with a
deploy; this noun only reads what the edges reported.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from ferry.cli import context, output
from ferry.errors import ValidationError
from ferry.model.duration import parse_duration

__all__ = ["app", "parse_since"]

app = typer.Typer(help="The edge's web application firewall (fly.toml [waf]): its events.")


def parse_since(value: str, now: datetime) -> datetime:
    """``10m``, ``2h``, ``90s`` (that long before ``now``) or an RFC 3339 time. Pure."""
    text = value.strip()
    if text and text[0].isdigit() and not any(c in text for c in "-:T"):
        return now - timedelta(seconds=parse_duration(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--since {value!r} is neither a duration nor a time",
            hint="write it like 10m, 2h or 2026-12-03T10:00:00Z",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@app.command("events")
def events(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    since: str | None = typer.Option(
        None, "--since", help="Only events this recent (10m, 2h) or after this time (RFC 3339)"
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=10_000, help="Newest N events"),
    as_json: bool = typer.Option(
        False, "--json", "-j", help="Print a JSON array of events (request_id, rule_ids, …)"
    ),
) -> None:
    """Requests that matched a firewall rule, oldest first: when, request id, client,
    method and path, the action taken, the anomaly score and every matched rule id."""
    name = context.resolve_app(app_name)
    moment = parse_since(since, datetime.now(UTC)) if since else None
    found = context.client(ctx).waf_events(name, since=moment, limit=limit)
    if as_json:
        output.print_json(found)
        return
    if not found:
        output.say(f"no WAF events for {name}" + (f" since {since}" if since else ""))
        return
    rows = [
        (
            e.time.strftime("%Y-%m-%d %H:%M:%S"),
            e.request_id,
            e.client_ip,
            f"{e.method} {e.path[:60]}",
            e.action + (f" ({e.status})" if e.status else ""),
            str(e.anomaly_score),
            " ".join(str(r) for r in e.rule_ids),
        )
        for e in found
    ]
    columns = ["WHEN (UTC)", "REQUEST ID", "CLIENT", "REQUEST", "ACTION", "SCORE", "RULES"]
    output.stdout().print(output.simple_table(columns, rows))
