"""`ferry scale count N`: reach N machines in a region by cloning or destroying machines."""

from __future__ import annotations

import typer

from ferry.cli import context, output
from ferry.client import placement_note
from ferry.deploy.scale import default_scale_region, plan_scale

app = typer.Typer(no_args_is_help=True, help="Change how many machines an app runs.")


@app.command("count")
def count(
    ctx: typer.Context,
    target: int = typer.Argument(..., metavar="N", help="Number of machines wanted"),
    region: str | None = typer.Option(None, "--region", "-r", help="Region to scale"),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before destroying machines"),
) -> None:
    """Create or destroy machines in one region until it runs N of them."""
    app_name = context.resolve_app(app)
    client = context.client(ctx)
    machines = client.list_machines(app_name)
    where = region or default_scale_region(machines, context.primary_region_of(app_name))
    plan = plan_scale(machines, where, target)
    if plan.create == 0 and not plan.destroy:
        output.say(f"{app_name} already runs {plan.current} machines in {where}")
        return
    if plan.destroy and not yes:
        ids = ", ".join(m.id for m in plan.destroy)
        if not typer.confirm(f"Destroy {len(plan.destroy)} machines in {where} ({ids})?"):
            raise typer.Exit(1)
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
            note = placement_note(machine)
            if note:
                output.say(f"Machine {machine.id}: {note}", style="yellow")
            # As flyctl does: the command returns once the new machines run.
            client.wait_machine(
                app_name, machine.id, state="started", instance_id=machine.instance_id
            )
            output.say(f"Created {machine.id} ({machine.region}) on {machine.host_id}: started")
            if machine.region != where:
                fell_back.append(machine.region)
    if fell_back:
        others = ", ".join(sorted(set(fell_back)))
        output.say(
            f"{app_name} now has {target - len(fell_back)} machines in {where} and "
            f"{len(fell_back)} in {others}: {where} has no room for more",
            style="yellow",
        )
    else:
        output.say(f"{app_name} now has {target} machines in {where}", style="green")
