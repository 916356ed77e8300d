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


def local_config(config_path: Path | None = None) -> tuple[Path, AppConfig] | None:
    """The fly.toml named by ``-c`` or found from the working directory, parsed.

    ``None`` when no ``-c`` was given and there is no fly.toml. Raises
    ``ConfigError`` when a named file is missing or a file is invalid.
    """
    if config_path is not None:
        if not config_path.is_file():
            raise ConfigError(
                f"config file {config_path} does not exist",
                hint="pass the path of your fly.toml with -c",
            )
        return config_path.resolve(), load_app_config(config_path)
    found = find_config(Path.cwd())
    if found is None:
        return None
    return found, load_app_config(found)


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
    try:
        found = local_config()
    except ConfigError:
        return None
    if found is None or found[1].app != app:
        return None
    return found[1].primary_region
