"""`ferry launch`: turn the current directory into an app, as `fly launch` does.

Order matters for the user: everything that can be refused (the project is
not recognised, a fly.toml is already there, an unknown region, a name that
is taken) is refused before anything is written, and the app is created
before the files are written, so a failed launch leaves the directory as it
was. Deploying afterwards goes through `ferry deploy` itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.core import TyperGroup

from ferry.cli import context, output
from ferry.client import FerryClient
from ferry.config import CONFIG_FILENAME, AppConfig, load_app_config
from ferry.config.generate import render_fly_toml, retarget_fly_toml
from ferry.deploy.plan import check_regions
from ferry.deploy.scanner import SourceInfo, read_project, scan_project
from ferry.errors import ApiError, ConfigError, ValidationError

_NAME_MAX = 63


def suggest_app_name(directory_name: str) -> str | None:
    """An app name made from a directory name (``My_Project`` → ``my-project``), or ``None``
    when nothing usable is left. Pure."""
    name = re.sub(r"[^a-z0-9]+", "-", directory_name.lower()).strip("-")[:_NAME_MAX].strip("-")
    return name if len(name) >= 2 else None


def launch_command(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="App name (default: the directory's)"),
    region: str | None = typer.Option(
        None, "--region", "-r", help="Primary region (default: the cluster's first region)"
    ),
    org: str | None = typer.Option(
        None, "--org", "-o", help="Organization slug (default: your only one, or personal)"
    ),
    internal_port: int | None = typer.Option(
        None,
        "--internal-port",
        min=1,
        max=65535,
        help="Port the app listens on (default: the Dockerfile's EXPOSE, else the project's)",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Accept all confirmations (deploys)"),
    now: bool = typer.Option(False, "--now", help="Deploy right after launching"),
    no_deploy: bool = typer.Option(False, "--no-deploy", help="Do not deploy, nor ask"),
    copy_config: bool = typer.Option(
        False, "--copy-config", help="Use the fly.toml that is here for the new app"
    ),
) -> None:
    """Create an app from the project in the current directory, and offer to deploy it.

    Uses the Dockerfile that is here, or writes one for a Python (FastAPI,
    Flask), Node or Deno project; writes fly.toml; creates the app.
    """
    if no_deploy and now:
        raise ValidationError("--now and --no-deploy contradict each other", hint="pass one")
    directory = Path.cwd()
    config_file = directory / CONFIG_FILENAME
    existing = _existing_config(config_file, copy_config=copy_config, yes=yes)
    if existing is not None and internal_port is not None:
        raise ValidationError(
            "--internal-port cannot change a fly.toml that is copied",
            hint="edit internal_port in fly.toml, or launch without it",
        )
    source = _scan(directory, existing)
    app_name = _app_name(name, existing, directory)
    client = context.client(ctx)
    primary = _primary_region(client, region, existing)

    where = f"organization {org}" if org else "your organization"
    output.say(f"Creating app {app_name} in {where} (primary region {primary})")
    try:
        client.create_app(app_name, org_slug=org)
    except ApiError as exc:
        if exc.status == 409:
            raise ApiError(
                f"an app named {app_name!r} already exists",
                status=409,
                hint="choose another name with --name (nothing was written)",
            ) from exc
        raise
    if source is not None and source.dockerfile is not None:
        (directory / "Dockerfile").write_text(source.dockerfile, encoding="utf-8")
        output.say(f"Wrote Dockerfile for a {source.family} app")
    if existing is not None:
        text = config_file.read_text(encoding="utf-8")
        config_file.write_text(retarget_fly_toml(text, app_name, primary), encoding="utf-8")
        output.say(f"Updated {CONFIG_FILENAME}: app {app_name}, primary region {primary}")
    elif source is not None:  # always the case without a fly.toml: _scan scanned
        port = internal_port or source.port
        text = render_fly_toml(app_name, primary, port, env=source.env, family=source.family)
        config_file.write_text(text, encoding="utf-8")
        output.say(f"Wrote {CONFIG_FILENAME} (internal port {port})")
    output.say(f"App {app_name} is ready", style="green")

    if no_deploy:
        output.say("Deploy it when you are ready with `ferry deploy`")
        return
    if not (yes or now) and not typer.confirm("Would you like to deploy now?", default=False):
        output.say("Deploy it when you are ready with `ferry deploy`")
        return
    _deploy(ctx, config_file, app_name)


def _deploy(ctx: typer.Context, config_file: Path, app_name: str) -> None:
    """Run `ferry deploy -c FILE -a APP` in this process: the same command, flags defaulted."""
    root = ctx.find_root().command
    deploy = root.get_command(ctx, "deploy") if isinstance(root, TyperGroup) else None
    if deploy is None:
        raise ConfigError("this ferry has no deploy command")  # pragma: no cover
    args = ["--config", str(config_file), "--app", app_name]
    with deploy.make_context("deploy", args, parent=ctx) as deploy_ctx:
        deploy.invoke(deploy_ctx)


def _existing_config(config_file: Path, *, copy_config: bool, yes: bool) -> AppConfig | None:
    """The fly.toml already here, when the user agrees to launch from it; else ``None``.

    As flyctl: it is used with --copy-config (or --yes, or a "yes" to the
    question); otherwise launch stops, since writing a new one would lose it.
    """
    if not config_file.is_file():
        if copy_config:
            raise ConfigError(
                f"--copy-config: there is no {CONFIG_FILENAME} here to copy",
                hint="run ferry launch without it to write a new one",
            )
        return None
    config = load_app_config(config_file)  # an invalid file is refused, naming the line
    owner = f" for app {config.app}" if config.app else ""
    if not (copy_config or yes):
        question = (
            f"An existing {CONFIG_FILENAME} was found{owner}. "
            "Would you like to copy its configuration to the new app?"
        )
        if not typer.confirm(question, default=False):
            raise ConfigError(
                f"{config_file} already exists{owner}; nothing was changed",
                hint="pass --copy-config to launch a new app from it, or run "
                "`ferry deploy` to deploy the app it describes",
            )
    output.say(f"Using the existing {CONFIG_FILENAME}{owner}")
    return config


def _scan(directory: Path, existing: AppConfig | None) -> SourceInfo | None:
    """What is here; ``None`` when a copied fly.toml already says where the image comes from."""
    if existing is not None and (
        existing.build.image or existing.build.dockerfile or (directory / "Dockerfile").is_file()
    ):
        return None
    output.say("Scanning source code")
    source = scan_project(read_project(directory))
    output.say(f"Detected a {source.family} app")
    return source


def _app_name(name: str | None, existing: AppConfig | None, directory: Path) -> str:
    chosen = name or (existing.app if existing is not None else None)
    chosen = chosen or suggest_app_name(directory.name)
    if chosen is None:
        raise ValidationError(
            f"cannot make an app name from the directory name {directory.name!r}",
            hint="pass --name NAME (lowercase letters, digits and dashes)",
        )
    return chosen


def _primary_region(client: FerryClient, region: str | None, existing: AppConfig | None) -> str:
    """``--region``, else the copied file's primary_region, else the cluster's first region."""
    known = [r.code for r in client.regions()]
    chosen = region or (existing.primary_region if existing is not None else None)
    if chosen is None:
        if not known:
            raise ValidationError(
                "the cluster has no regions with a host yet",
                hint="start it with `ferry cluster up`",
            )
        return known[0]
    check_regions([chosen], known)
    return chosen
