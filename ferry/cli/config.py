"""`ferry config validate` and `ferry config show`, as flyctl's `fly config` has them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ferry.cli import context, output
from ferry.config import CONFIG_FILENAME, load_app_config
from ferry.config.advice import config_warnings
from ferry.config.remote import config_from_machines
from ferry.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help="Check and show an app's configuration.")

_CONFIG = typer.Option(None, "--config", "-c", help="Path to fly.toml (default: ./fly.toml)")


def _config_file(config_path: Path | None) -> Path:
    path = config_path or Path.cwd() / CONFIG_FILENAME
    if path.is_dir():
        path = path / CONFIG_FILENAME
    if not path.is_file():
        raise ConfigError(
            f"no fly.toml at {path}",
            hint="run this where your fly.toml is, or pass its path with -c",
        )
    return path


@app.command("validate")
def validate(
    config_path: Path | None = _CONFIG,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
) -> None:
    """Check fly.toml: print its first error (exit 1) or the warnings (exit 0).

    Validation is local: it reads the file only. -a stands in for a missing `app`.
    """
    path = _config_file(config_path)
    try:
        parsed = load_app_config(path)
    except ConfigError as error:
        output.print_error(error)
        output.say(f"✘ {path} is not valid", style="red")
        raise typer.Exit(1) from None
    if app_name and not parsed.app:
        parsed = parsed.model_copy(update={"app": app_name})
    warnings = config_warnings(parsed, dockerfile_beside=(path.parent / "Dockerfile").is_file())
    for warning in warnings:
        output.stderr().print(f"Warning: {warning}", style="yellow", markup=False)
    output.say(f"✓ {path} is valid" + (f" ({len(warnings)} warnings)" if warnings else ""))


@app.command("show")
def show(
    ctx: typer.Context,
    app_name: str | None = typer.Option(None, "--app", "-a", help=context.APP_OPTION_HELP),
    config_path: Path | None = _CONFIG,
    local: bool = typer.Option(
        False, "--local", help="Show the local fly.toml instead of the deployed configuration"
    ),
) -> None:
    """Print the app's configuration as JSON with fly.toml's keys.

    By default it is the configuration the app's machines run (rebuilt from
    them, as flyctl does); with --local, the local fly.toml as parsed.
    """
    if local:
        path = _config_file(config_path)
        parsed = load_app_config(path)  # refuses an invalid file, as deploy would
        shown = dict(parsed.raw)
        if app_name:
            shown["app"] = app_name
        # default=str: TOML dates and times have no JSON form; flyctl prints them as text too.
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    name = context.resolve_app(app_name, config_path)
    machines = context.client(ctx).list_machines(name)
    shown, warnings = config_from_machines(name, machines)
    for warning in warnings:
        output.stderr().print(f"Warning: {warning}", style="yellow", markup=False)
    typer.echo(json.dumps(shown, indent=2))
