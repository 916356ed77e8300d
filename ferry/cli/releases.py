"""`ferry releases`: an app's releases; `ferry releases rollback [VERSION]` deploys one again."""

from __future__ import annotations

import typer
from rich.table import Table

from ferry.cli import context, output
from ferry.cli.deploy import run_release
from ferry.deploy.plan import (
    DEFAULT_MAX_UNAVAILABLE,
    DeployStep,
    choose_regions,
    live_machines,
    machine_group,
    parse_max_unavailable,
    plan_deploy,
)
from ferry.deploy.rollback import choose_rollback, rollback_configs
from ferry.deploy.rollout import expected_check_count
from ferry.deploy.strategies import check_strategy
from ferry.model import Machine, MachineConfig, parse_duration
from ferry.model.release import NewRelease, Release

app = typer.Typer(help="An app's releases (one per deploy), and rollback to an earlier one.")


@app.callback(invoke_without_command=True)
def list_releases(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    as_json: bool = typer.Option(False, "--json", "-j", help="Print the API answer as JSON"),
) -> None:
    """List the app's releases, newest first: version, status, image, who, when."""
    if ctx.invoked_subcommand is not None:
        return
    name = context.resolve_app(app_name)
    found = context.client(ctx).list_releases(name)
    if as_json:
        output.print_json(found)
        return
    if not found:
        output.say(f"{name} has no releases yet: `ferry deploy` makes the first")
        return
    output.stdout().print(releases_table(found))


def releases_table(releases: list[Release]) -> Table:
    rows = [
        (
            f"v{r.version}",
            r.status,
            r.strategy,
            r.description,
            output.short_digest(r.image),
            r.user,
            output.ago(r.created_at),
        )
        for r in releases
    ]
    columns = ("VERSION", "STATUS", "STRATEGY", "DESCRIPTION", "IMAGE", "USER", "WHEN")
    return output.simple_table(columns, rows)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    version: int | None = typer.Argument(
        None, min=1, help="The release to deploy again (default: the previous complete one)"
    ),
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    wait_timeout: str | None = typer.Option(None, "--wait-timeout", help="e.g. 5m (default 5m)"),
    max_unavailable: str | None = typer.Option(
        None, "--max-unavailable", help="Rolling: machines replaced at once (default 0.33)"
    ),
) -> None:
    """Deploy an earlier release's image and machine configs again, as a new release.

    Each process group's machines get the config that release recorded for their
    group; a group running now that the release did not deploy is refused.

    Uses the strategy that release was deployed with; its release_command is not run
    again. A version the app does not have is refused before anything changes.
    """
    name = context.resolve_app(app_name)
    timeout = parse_duration(wait_timeout) if wait_timeout else 300.0
    batch = (
        parse_max_unavailable(max_unavailable)
        if max_unavailable is not None
        else DEFAULT_MAX_UNAVAILABLE
    )
    client = context.client(ctx)
    target = choose_rollback(name, client.list_releases(name, limit=1000), version)
    machines = client.list_machines(name)
    running = _groups_of(machines)
    configs = rollback_configs(name, target, running or tuple(target.configs or {}))
    check_strategy(target.strategy, max(expected_check_count(c) for c in configs.values()))
    cluster_regions = [region.code for region in client.regions()]
    primary = next(iter(configs.values())).env.get("PRIMARY_REGION")
    regions = choose_regions(None, machines, primary, cluster_regions)
    groups = tuple(configs)
    plan = plan_deploy(machines, regions, target.strategy, groups, fill_regions=len(groups) == 1)
    output.say(f"Rolling {name} back to v{target.version}: {target.image}")
    for group in sorted(set(target.configs or {}) - set(groups)):
        output.say(
            f"  v{target.version} also ran process group {group}, which no machine runs now:"
            " not recreated",
            style="yellow",
        )

    def config_for(step: DeployStep) -> MachineConfig:
        return configs[step.group]

    new = NewRelease(
        image=target.image,
        strategy=target.strategy,
        description=f"rollback to v{target.version}",
        configs=configs,
    )
    release = run_release(
        client, name, plan, config_for, new, wait_timeout=timeout, max_unavailable=batch
    )
    output.say(
        f"Rolled {name} back to v{target.version} as v{release.version}: "
        f"{output.short_digest(target.image)}",
        style="green",
    )


def _groups_of(machines: list[Machine]) -> tuple[str, ...]:
    """The process groups the app's live machines run, sorted (empty for none)."""
    return tuple(sorted({machine_group(m) for m in live_machines(machines)}))
