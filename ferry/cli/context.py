"""What every command needs: a client, the app it acts on, the local fly.toml.

Tests inject a client factory through ``typer``'s ``obj`` (``CliRunner.invoke(app,
args, obj=CliState(client_factory=...))``); nothing is patched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import typer
from typer.core import TyperGroup, TyperOption

from ferry.cli import output
from ferry.client import FerryClient
from ferry.config import AppConfig, find_config, load_app_config
from ferry.deploy.images import CommandRunner, SubprocessRunner
from ferry.errors import ConfigError, ValidationError

APP_OPTION_HELP = "App name (default: $FLY_APP, then `app` in ./fly.toml)"
#: flyctl's variable naming the app a command acts on when ``-a`` is not given.
APP_ENV_VARIABLE = "FLY_APP"


@dataclass
class CliState:
    """Per-invocation state kept in ``ctx.obj``. The client is made once, on first use."""

    client_factory: Callable[[], FerryClient] = FerryClient
    image_tools: CommandRunner = field(default_factory=SubprocessRunner)
    _client: FerryClient | None = field(default=None, init=False, repr=False)

    def client(self) -> FerryClient:
        if self._client is None:
            self._client = self.client_factory()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def bind_app_environment(command: TyperGroup) -> None:
    """Let every ``-a/--app`` option under ``command`` fall back to ``$FLY_APP``, as flyctl does.

    Precedence, for every command at once: ``-a``, then ``$FLY_APP``, then the
    ``app`` of the fly.toml the command reads. Idempotent; mutates the options.
    """
    for sub in command.commands.values():
        for param in sub.params:
            if isinstance(param, TyperOption) and "--app" in param.opts:
                param.envvar = APP_ENV_VARIABLE
        if isinstance(sub, TyperGroup):
            bind_app_environment(sub)


def state(ctx: typer.Context) -> CliState:
    """The ``CliState`` of this invocation, created on first call (closed with the context)."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    cli_state: CliState = root.obj
    return cli_state


def client(ctx: typer.Context) -> FerryClient:
    cli_state = state(ctx)
    ctx.find_root().call_on_close(cli_state.close)
    return cli_state.client()


def local_config(
    config_path: Path | None = None, *, warn: bool = True
) -> tuple[Path, AppConfig] | None:
    """The fly.toml named by ``-c`` or found from the working directory, parsed.

    ``None`` when no ``-c`` was given and there is no fly.toml. Raises
    ``ConfigError`` when a named file is missing or a file is invalid. With
    ``warn``, the file's warnings (unknown or ignored keys) are printed on stderr.
    """
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(
                f"config file {config_path} does not exist",
                hint="pass the path of your fly.toml with -c",
            )
        return config_path.resolve(), _warned(load_app_config(config_path), warn)
    found = find_config(Path.cwd())
    if found is None:
        return None
    return found, _warned(load_app_config(found), warn)


def _warned(config: AppConfig, warn: bool) -> AppConfig:
    for warning in config.warnings if warn else ():
        output.stderr().print(f"WARNING {warning}", style="yellow", markup=False)
    return config


def resolve_app(app: str | None, config_path: Path | None = None) -> str:
    """``-a/--app`` if given, else ``app`` from fly.toml; raises ``ValidationError`` otherwise."""
    if app:
        return app
    found = local_config(config_path)
    if found is None:
        raise ValidationError(
            "no app given and no fly.toml in this directory",
            hint="pass -a APP, or run the command where your fly.toml is",
        )
    path, config = found
    if not config.app:
        raise ValidationError(
            f"{path} does not name an app",
            hint='add `app = "NAME"` to it, or pass -a APP',
        )
    return config.app


def primary_region_of(app: str) -> str | None:
    """``primary_region`` of ./fly.toml when that file describes ``app``; else ``None``."""
    found = _config_of(app)
    return found.primary_region if found is not None else None


def process_groups_of(app: str) -> tuple[str, ...]:
    """The ``[processes]`` groups of ./fly.toml when that file describes ``app``; else ``()``."""
    found = _config_of(app)
    return found.groups if found is not None else ()


def _config_of(app: str) -> AppConfig | None:
    try:
        found = local_config(warn=False)
    except ConfigError:
        return None
    if found is None or found[1].app != app:
        return None
    return found[1]
