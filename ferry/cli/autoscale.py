"""`ferry autoscale status`: the policy, what the autoscaler sees per region, what it did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from ferry.cli import context, output
from ferry.model import format_duration

app = typer.Typer(no_args_is_help=True, help="See how the autoscaler scales an app.")


@app.command("status")
def status(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API answer as JSON"),
) -> None:
    """Show the policy, machines and demand per region, and the last decisions with reasons."""
    name = context.resolve_app(app_name)
    answer = context.client(ctx).autoscale_status(name)
    if as_json:
        output.print_json(answer)
        return
    console = output.stdout()
    console.print(
        output.key_values(
            [
                ("App", name),
                ("Policy", policy_summary(answer.get("policy"))),
                ("Target", _target(answer)),
                ("Nearest region", str(answer.get("placement_basis") or "-")),
                ("Last cycle", str(answer.get("last_reason") or "not run yet")),
            ]
        )
    )
    console.print()
    console.print(regions_table(answer.get("regions", {})))
    console.print()
    decisions = answer.get("decisions", [])
    if decisions:
        console.print(decisions_table(decisions))
    else:
        console.print("No decisions yet.", markup=False)


def policy_summary(policy: dict[str, Any] | None) -> str:
    """One line describing the ``[autoscale]`` policy, or what acts without one."""
    if not policy:
        return "none (no \\[autoscale] section): only idle autostop of auto_stop_machines acts"
    regions = ", ".join(policy.get("regions") or []) or "where the app is deployed"
    state = "on" if policy.get("enabled", True) else "off (idle autostop only)"
    return (
        f"{state}; regions {regions}; {policy['min_per_region']}-{policy['max_per_region']} "
        f"per region, at most {policy['max_total']}; scale out after "
        f"{format_duration(policy['scale_out_after'])}, in after "
        f"{format_duration(policy['scale_in_after'])}; stop idle after "
        f"{format_duration(policy['stop_idle_after'])}; destroy after "
        f"{format_duration(policy['destroy_after'])}"
    )


def _target(answer: dict[str, Any]) -> str:
    target = answer.get("target_concurrency")
    if target is None:
        return "-"
    policy = answer.get("policy") or {}
    source = "target_concurrency" if policy.get("target_concurrency") else "service soft_limit"
    return f"{target} concurrent requests per machine ({source})"


def regions_table(regions: dict[str, dict[str, Any]]) -> Table:
    """Machines and demand per region (demand from nearby regions is counted where it is served)."""
    table = Table(title="Regions", title_justify="left", box=None, pad_edge=False)
    for column in ("REGION", "STARTED", "STOPPED", "DESIRED", "REQ/S", "IN FLIGHT", "UNSERVED/S"):
        table.add_column(column)
    for region, row in sorted(regions.items()):
        desired = row.get("desired")
        table.add_row(
            region,
            str(row.get("started", 0)),
            str(row.get("stopped", 0)),
            "-" if desired is None else str(desired),
            f"{row.get('rate', 0):.1f}",
            f"{row.get('concurrency', 0):.1f}",
            f"{row.get('unserved_rate', 0):.1f}",
        )
    return table


def decisions_table(decisions: list[dict[str, Any]]) -> Table:
    """The last decisions, newest first, with their reasons and results."""
    table = Table(title="Last decisions", title_justify="left", box=None, pad_edge=False)
    for column in ("WHEN", "ACTION", "MACHINE", "REASON", "RESULT"):
        table.add_column(column, no_wrap=column in ("WHEN", "ACTION"))
    for item in decisions:
        at = item.get("at")
        when = output.ago(datetime.fromisoformat(at)) if at else "-"
        table.add_row(
            when,
            str(item.get("kind", "")),
            str(item.get("machine_id") or item.get("region") or "-"),
            str(item.get("reason", "")),
            str(item.get("result", "")),
        )
    return table
