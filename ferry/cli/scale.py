"""`ferry scale count N` / `web=2 worker=1`: reach a count of machines per process group."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.client import FerryClient, placement_note
from ferry.deploy.scale import (
    ScalePlan,
    default_scale_region,
    parse_counts,
    plan_scale,
    resolve_counts,
)
from ferry.model import Machine

app = typer.Typer(no_args_is_help=True, help="Change how many machines an app runs.")


@app.command("count")
def count(
    ctx: typer.Context,
    counts: list[str] = typer.Argument(
        ..., metavar="N | GROUP=N...", help="Machines wanted: N, or per process group web=2"
    ),
    region: str | None = typer.Option(None, "--region", "-r", help="Region to scale"),
    process_group: str | None = typer.Option(
        None, "--process-group", help="Process group a bare N applies to"
    ),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before destroying machines"),
) -> None:
    """Create or destroy machines in one region until each group runs its count.

    An app with one process group takes a bare N; with several, give
    GROUP=N for each group to change (or N with --process-group).
    """
    app_name = context.resolve_app(app)
    parsed = parse_counts(counts)
    if process_group is not None and None in parsed:
        parsed = {process_group: parsed[None]}
    client = context.client(ctx)
    machines = client.list_machines(app_name)
    targets = resolve_counts(parsed, machines, context.process_groups_of(app_name))
    where = region or default_scale_region(machines, context.primary_region_of(app_name))
    plans = [plan_scale(machines, where, target, group) for group, target in targets.items()]
    doomed = [m for plan in plans for m in plan.destroy]
    if doomed and not yes:
        ids = ", ".join(m.id for m in doomed)
        if not typer.confirm(f"Destroy {len(doomed)} machines in {where} ({ids})?"):
            raise typer.Exit(1)
    for plan in plans:
        _apply(client, app_name, plan, several=len(plans) > 1 or plan.group != "app")


def _apply(client: FerryClient, app_name: str, plan: ScalePlan, *, several: bool) -> None:
    """Destroy, then create and wait for, the machines of one group's plan."""
    where = plan.region
    what = f"{plan.group} machines" if several and plan.group else "machines"
    if plan.create == 0 and not plan.destroy:
        output.say(f"{app_name} already runs {plan.current} {what} in {where}")
        return
    for machine in plan.destroy:
        client.delete_machine(app_name, machine.id, force=True)
        output.say(f"Destroyed {machine.id} ({where})")
    fell_back: list[str] = []
    if plan.create and plan.template is not None:
        created = [
            client.create_machine(
                app_name, plan.template.config, region=where, region_fallback=True
            )
            for _ in range(plan.create)
        ]
        for machine in created:
            _wait_started(client, app_name, machine)
            if machine.region != where:
                fell_back.append(machine.region)
    if fell_back:
        others = ", ".join(sorted(set(fell_back)))
        output.say(
            f"{app_name} now has {plan.target - len(fell_back)} {what} in {where} and "
            f"{len(fell_back)} in {others}: {where} has no room for more",
            style="yellow",
        )
    else:
        output.say(f"{app_name} now has {plan.target} {what} in {where}", style="green")


def _wait_started(client: FerryClient, app_name: str, machine: Machine) -> None:
    note = placement_note(machine)
    if note:
        output.say(f"Machine {machine.id}: {note}", style="yellow")
    # As flyctl does: the command returns once the new machines run.
    client.wait_machine(app_name, machine.id, state="started", instance_id=machine.instance_id)
    output.say(f"Created {machine.id} ({machine.region}) on {machine.host_id}: started")
