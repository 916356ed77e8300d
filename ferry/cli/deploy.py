"""`ferry deploy`: build or copy the image, then roll it out region by region.

Order matters for the user: everything that can be refused cheaply (app name,
regions, strategy, image source) is checked before a build starts.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import typer

from ferry.cli import context, output
from ferry.cli.deploy_postgres import sync_postgres
from ferry.client import FerryClient, placement_note
from ferry.config import AppConfig
from ferry.deploy.images import (
    ImageSource,
    classify_image,
    dockerfile_source,
    publish_image,
    registry_address,
)
from ferry.deploy.plan import (
    DEFAULT_GROUP,
    DEFAULT_MAX_UNAVAILABLE,
    STRATEGIES,
    DeployPlan,
    DeployStep,
    Strategy,
    check_regions,
    choose_regions,
    live_machines,
    machine_group,
    parse_max_unavailable,
    parse_regions,
    plan_deploy,
    rolling_batches,
)
from ferry.deploy.release_command import ReleaseCommand
from ferry.deploy.rollback import configs_by_group
from ferry.deploy.rollout import Progress, Rollout, expected_check_count
from ferry.deploy.strategies import check_strategy
from ferry.deploy.volumes import DeployVolumes
from ferry.errors import ApiError, ConfigError, FerryError, RuntimeFailure, ValidationError
from ferry.model import Machine, MachineConfig, parse_duration
from ferry.model.release import NewRelease, Release, ReleaseStatus

#: What a release command needs: its argv, its timeout in seconds, the region it runs in.
ReleaseCommandSpec = tuple[list[str], float, str]


def deploy_command(
    ctx: typer.Context,
    config_path: Path | None = typer.Option(None, "--config", "-c", help="Path to fly.toml"),
    app: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    regions: str | None = typer.Option(None, "--regions", help="Comma-separated, e.g. ams,iad"),
    image: str | None = typer.Option(
        None, "--image", "-i", help="Deploy this image (reference, OCI layout or .tar): no build"
    ),
    strategy: str | None = typer.Option(
        None, "--strategy", help="rolling | immediate | canary | bluegreen"
    ),
    wait_timeout: str | None = typer.Option(None, "--wait-timeout", help="e.g. 5m (default 5m)"),
    max_unavailable: str | None = typer.Option(
        None,
        "--max-unavailable",
        help="Rolling: machines replaced at once, a count or a fraction (default 0.33)",
    ),
) -> None:
    """Deploy the app described by fly.toml (or --image) to its regions."""
    found = context.local_config(config_path)
    app_config = found[1] if found else None
    config_dir = found[0].parent if found else Path.cwd()
    app_name = app or (app_config.app if app_config else None)
    if not app_name:
        raise ValidationError(
            "no app to deploy: fly.toml names none and -a was not given",
            hint='pass -a APP, or add `app = "NAME"` to fly.toml',
        )
    chosen_strategy = _strategy(strategy, app_config)
    chosen_max_unavailable = (
        parse_max_unavailable(max_unavailable)
        if max_unavailable is not None
        else (app_config.deploy.max_unavailable if app_config else DEFAULT_MAX_UNAVAILABLE)
    )
    timeout = (
        parse_duration(wait_timeout)
        if wait_timeout
        else (app_config.deploy.wait_timeout if app_config else 300.0)
    )
    client = context.client(ctx)
    cluster_regions = [region.code for region in client.regions()]
    requested = parse_regions(regions)
    if requested:
        check_regions(requested, cluster_regions)
    registry = registry_address(client.platform_info())
    source = _image_source(image, app_config, config_dir, registry)

    if app_config is not None:  # refused before the app is created
        check_strategy(chosen_strategy, _check_count(app_config, []))
    machines = _ensure_app(client, app_name)
    primary = app_config.primary_region if app_config else None
    targets = choose_regions(requested, machines, primary, cluster_regions)
    groups = app_config.groups if app_config else _groups_of(machines)
    plan = plan_deploy(
        machines, targets, chosen_strategy, groups, fill_regions=bool(requested) or len(groups) == 1
    )
    check_strategy(chosen_strategy, _check_count(app_config, machines))

    pinned = publish_image(
        source,
        app=app_name,
        registry=registry,
        runner=context.state(ctx).image_tools,
        now=datetime.now(UTC),
        say=lambda line: output.say(line, style="dim"),
    )
    output.say(f"Image: {pinned}")
    config_for = _config_factory(app_config, pinned, machines)
    rollout_config_for = config_for
    if app_config is not None and app_config.mounts:
        if chosen_strategy in ("canary", "bluegreen"):
            raise ValidationError(
                f"the {chosen_strategy} strategy starts new machines beside the old ones, and "
                "a volume is mounted by one machine at a time",
                hint="deploy an app with [[mounts]] with --strategy rolling or immediate",
            )
        rollout_config_for = DeployVolumes(client, app_name, app_config, machines).wrap(config_for)
    release_command: ReleaseCommandSpec | None = None
    command = app_config.deploy.release_command if app_config else None
    if app_config is not None and command:
        where = primary if primary in targets else targets[0]
        release_command = (command, app_config.deploy.release_command_timeout, where)
    configs = configs_by_group(plan, config_for)
    new = NewRelease(image=pinned, strategy=chosen_strategy, configs=configs)
    sync_postgres(client, app_name, app_config)  # refused before any machine changes
    release = run_release(
        client,
        app_name,
        plan,
        rollout_config_for,
        new,
        wait_timeout=timeout,
        max_unavailable=chosen_max_unavailable,
        release_command=release_command,
    )
    _sync_autoscale(client, app_name, app_config)
    output.say(
        f"Deployed {app_name} v{release.version}: {output.short_digest(pinned)}", style="green"
    )


def run_release(
    client: FerryClient,
    app_name: str,
    plan: DeployPlan,
    config_for: Callable[[DeployStep], MachineConfig],
    new: NewRelease,
    *,
    wait_timeout: float,
    max_unavailable: float,
    release_command: ReleaseCommandSpec | None = None,
) -> Release:
    """Record a release, run the release command (if any), roll ``plan`` out, and mark the
    release ``complete`` — or ``failed`` and raise ``RuntimeFailure``. Blocking.

    A failing release command raises before any machine is touched, so the
    previous release keeps serving.
    """
    release = client.create_release(app_name, new)
    how = _describe_strategy(plan, max_unavailable)
    output.say(
        f"Release v{release.version}: deploying {app_name} to {', '.join(plan.regions)} "
        f"({how}, {len(plan.updates)} to update, {len(plan.creates)} to create)",
        style="bold",
    )
    status: ReleaseStatus = "failed"
    try:
        if release_command is not None:
            _run_release_command(client, app_name, release_command, new)
        rollout = Rollout(
            client,
            app_name,
            config_for,
            wait_timeout=wait_timeout,
            max_unavailable=max_unavailable,
            on_progress=_print_progress,
        )
        result = rollout.run(plan)
        _print_summary(client.list_machines(app_name))
        if not result.ok:
            raise RuntimeFailure(
                f"deploy of {app_name} stopped: {result.failure}",
                hint="machines not yet updated keep the previous version; "
                "see `ferry logs` and `ferry machine status ID`",
            )
        status = "complete"
    finally:
        _finish_release(client, app_name, release.version, status)
    return release


def _run_release_command(
    client: FerryClient, app_name: str, spec: ReleaseCommandSpec, new: NewRelease
) -> None:
    """Run the release command, show its output; ``RuntimeFailure`` when it did not succeed."""
    command, seconds, region = spec
    # The first group's config, as before groups were recorded: its env and image.
    base = next(iter((new.configs or {}).values()), None) or MachineConfig(image=new.image)
    output.say(f"Running release_command `{' '.join(command)}` in {region} …")
    outcome = ReleaseCommand(client, app_name, timeout=seconds).run(base, command, region)
    for line in outcome.output:
        output.stdout().print(f"  {line}", markup=False, highlight=False)
    if not outcome.ok:
        raise RuntimeFailure(
            f"deploy of {app_name} aborted: {outcome.failure}",
            hint="no machine was changed: the previous release keeps serving",
        )
    output.say("  release_command succeeded (exit code 0)", style="green")


def _finish_release(
    client: FerryClient, app_name: str, version: int, status: ReleaseStatus
) -> None:
    """Mark the release; a failure to do so is reported, never hides the deploy's own outcome."""
    try:
        client.finish_release(app_name, version, status)
    except FerryError as exc:
        output.say(f"could not mark release v{version} {status}: {exc}", style="yellow")


def _sync_autoscale(client: FerryClient, app_name: str, app_config: AppConfig | None) -> None:
    """Send fly.toml's [autoscale] to the control plane, or remove a policy fly.toml dropped."""
    if app_config is None:
        return
    if app_config.autoscale is not None:
        client.put_autoscale_policy(app_name, app_config.autoscale)
        state = "on" if app_config.autoscale.enabled else "off"
        output.say(f"Autoscale policy from [autoscale] sent ({state})")
    elif client.delete_autoscale_policy(app_name):
        output.say("Autoscale policy removed: fly.toml has no [autoscale] section")


def _strategy(flag: str | None, app_config: AppConfig | None) -> Strategy:
    value = flag or (app_config.deploy.strategy if app_config else "rolling")
    for known in STRATEGIES:
        if value == known:
            return known
    raise ValidationError(
        f"unknown --strategy {value!r}", hint="use rolling, immediate, canary or bluegreen"
    )


def _check_count(app_config: AppConfig | None, machines: list[Machine]) -> int:
    """How many health checks the deployed machines will have (for ``check_strategy``)."""
    if app_config is not None:
        return max(
            expected_check_count(app_config.machine_config("image", group=group))
            for group in app_config.groups
        )
    live = live_machines(machines)
    return expected_check_count(live[0].config) if live else 0


def _describe_strategy(plan: DeployPlan, max_unavailable: float) -> str:
    """``rolling, up to 3 at a time`` — what the user should expect to see happen."""
    if plan.strategy in ("immediate", "bluegreen"):
        return plan.strategy
    widest = max((len(batch) for batch in rolling_batches(plan.steps, max_unavailable)), default=1)
    rolling = f"rolling, up to {widest} at a time" if widest > 1 else "rolling, one at a time"
    return f"a canary first, then {rolling}" if plan.strategy == "canary" else rolling


def _image_source(
    image: str | None, app_config: AppConfig | None, config_dir: Path, registry: str
) -> ImageSource:
    """Where the image comes from: --image, then [build] image, then a Dockerfile."""
    if image:
        return classify_image(image, Path.cwd(), registry)
    build = app_config.build if app_config else None
    if build and build.image:
        return classify_image(build.image, config_dir, registry)
    if build and build.dockerfile:
        return dockerfile_source(build.dockerfile, config_dir, dict(build.args), build.target)
    if app_config and (config_dir / "Dockerfile").is_file():
        args = dict(build.args) if build else {}
        target = build.target if build else None
        return dockerfile_source(config_dir / "Dockerfile", config_dir, args, target)
    raise ConfigError(
        "no image to deploy",
        hint="pass --image, or set [build] image or [build] dockerfile in fly.toml",
    )


def _ensure_app(client: FerryClient, app_name: str) -> list[Machine]:
    """The app's machines; creates the app (and says so) when it does not exist yet."""
    try:
        client.get_app(app_name)
    except ApiError as exc:
        if exc.status != 404:
            raise
        client.create_app(app_name)
        output.say(f"App {app_name} did not exist: created it")
        return []
    return client.list_machines(app_name)


def _config_factory(
    app_config: AppConfig | None, image: str, machines: list[Machine]
) -> Callable[[DeployStep], MachineConfig]:
    """fly.toml decides the config; without it each machine keeps its own, with the new image,
    and a new machine (a region's first, a canary, a green) copies one of its region's, or
    any machine's."""
    live = live_machines(machines)
    by_id = {machine.id: machine for machine in live}

    def config_for(step: DeployStep) -> MachineConfig:
        if app_config is not None:
            return app_config.machine_config(image, region=step.region, group=step.group)
        same_group = [m for m in live if machine_group(m) == step.group]
        existing = by_id.get(step.machine_id or "") or next(
            (m for m in same_group if m.region == step.region),
            same_group[0] if same_group else None,
        )
        if existing is not None:
            if existing.config.mounts and existing.id != step.machine_id:
                raise ValidationError(
                    f"a new machine would copy machine {existing.id}'s config, which mounts "
                    f"volume {existing.config.mounts[0].volume}: a volume serves one machine",
                    hint="deploy with a fly.toml whose [[mounts]] gives each machine a volume",
                )
            return existing.config.model_copy(update={"image": image})
        return MachineConfig(image=image)

    return config_for


def _groups_of(machines: list[Machine]) -> tuple[str, ...]:
    """Without fly.toml: the groups the machines already run (``app`` for a new app)."""
    return tuple(sorted({machine_group(m) for m in live_machines(machines)})) or (DEFAULT_GROUP,)


def _print_progress(progress: Progress) -> None:
    step, seconds = progress.step, f"{progress.elapsed:.1f}s"
    if progress.phase == "begin":
        verb = (
            f"Updating {step.label}"
            if step.kind == "update"
            else f"Creating a machine in {step.region}"
        )
        output.say(f"{verb} …")
    elif progress.phase == "launched" and progress.machine and step.kind == "create":
        output.say(f"  created {progress.machine.id} on {progress.machine.host_id}", style="dim")
        note = placement_note(progress.machine)
        if note:
            output.say(f"  {progress.machine.id}: {note}", style="yellow")
    elif progress.phase == "started" and progress.machine:
        has_checks = expected_check_count(progress.machine.config) > 0
        tail = ", waiting for checks" if has_checks else ""
        output.say(f"  {progress.machine.id} started in {seconds}{tail}", style="green")
    elif progress.phase == "healthy" and progress.machine:
        # Batches interleave their machines' lines, so each line names its machine.
        output.say(f"  {progress.machine.id} checks passing after {seconds}", style="green")
    elif progress.phase == "ready" and progress.machine:
        output.say(f"  {progress.machine.id} uncordoned: the edges route to it", style="green")
    elif progress.phase == "cordoned" and progress.machine:
        output.say(f"  {progress.machine.id} cordoned: no new requests", style="dim")
    elif progress.phase == "note":
        output.say(f"  {progress.detail}", style="yellow")
    elif progress.phase == "destroyed" and progress.machine:
        output.say(f"  {progress.machine.id} ({step.region}) stopped and destroyed", style="dim")
    elif progress.phase == "failed":
        output.say(f"  failed after {seconds}: {progress.detail}", style="red")


def _print_summary(machines: list[Machine]) -> None:
    rows = [
        (m.id, m.region, m.state.value, output.short_digest(m.config.image), m.private_ip)
        for m in sorted(live_machines(machines), key=lambda m: (m.region, m.id))
    ]
    output.stdout().print()
    output.stdout().print(output.simple_table(("MACHINE", "REGION", "STATE", "IMAGE", "IP"), rows))
