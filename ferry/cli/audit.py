"""`ferry audit -o ORG`: who changed what in an organization, and who tried (docs/audit.md)."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.model.audit import AuditRecord

__all__ = ["action_text", "audit_command"]


def action_text(record: AuditRecord) -> str:
    """``POST /v1/apps/rocket/machines/1234/stop``: the route with its parameters filled
    in, then any other named thing (``kind=deploy name=ci``)."""
    path = record.route
    extra = []
    for key, value in sorted(record.target.items()):
        placeholder = "{" + key + "}"
        if placeholder in path:
            path = path.replace(placeholder, value)
        else:
            extra.append(f"{key}={value}")
    return " ".join([record.method, path, *extra])


def audit_command(
    ctx: typer.Context,
    org: str | None = typer.Option(
        None,
        "--org",
        "-o",
        help="The organization whose trail to show (its admins and the operator); "
        "without it, every record (the operator only)",
    ),
    limit: int = typer.Option(100, "--limit", "-n", min=1, max=1000, help="Newest N records"),
    before: int | None = typer.Option(
        None, "--before", min=1, help="Only records older than this id (the next page)"
    ),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API answer as JSON"),
) -> None:
    """Show the audit trail, newest first: every change, and every refused attempt
    against the organization's apps (another organization's included).

    Each line: id, when (UTC), who (token kind, name, email or organization),
    what (method and path), where from, status and outcome. Reads that
    succeeded are not recorded; nor are the host agents' and edges' reports.
    """
    records = context.client(ctx).list_audit(org, limit=limit, before=before)
    if as_json:
        output.print_json(records)
        return
    if not records:
        where = f"organization {org}" if org else "this cluster"
        output.say(f"no audit records for {where}" + (f" before id {before}" if before else ""))
        return
    columns = ["ID", "WHEN (UTC)", "WHO", "ACTION", "FROM", "STATUS", "OUTCOME"]
    if org is None:
        columns.insert(2, "ORG")
    rows = []
    for record in records:
        row = [
            str(record.id),
            record.at.strftime("%Y-%m-%d %H:%M:%S"),
            record.actor,
            action_text(record),
            record.source or "-",
            str(record.status),
            record.outcome,
        ]
        if org is None:
            row.insert(2, record.org_slug or "-")
        rows.append(row)
    output.stdout().print(output.simple_table(columns, rows))
    if len(records) == limit:
        scope = f"-o {org} " if org else ""
        output.say(f"older records: ferry audit {scope}--before {records[-1].id}")
