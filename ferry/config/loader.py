"""Read a fly.toml: find it, parse the TOML, check every section, build an ``AppConfig``."""

from __future__ import annotations

import re
import signal
import tomllib
from pathlib import Path

from ferry.config.app_config import AppConfig
from ferry.config.autoscale import parse_autoscale
from ferry.config.locate import KeyLocator
from ferry.config.reader import Source, Table, show
from ferry.config.sections import (
    parse_build,
    parse_deploy,
    parse_env,
    parse_experimental,
    parse_processes,
    parse_restart,
    parse_vm,
)
from ferry.config.services import parse_checks, parse_http_service, parse_services
from ferry.config.statics import parse_statics
from ferry.errors import ConfigError

__all__ = ["CONFIG_FILENAME", "find_config", "load_app_config", "parse_app_config"]

CONFIG_FILENAME = "fly.toml"
MAX_KILL_TIMEOUT_SECONDS = 300.0

_SECTIONS = (
    "build",
    "processes",
    "env",
    "http_service",
    "services",
    "checks",
    "vm",
    "deploy",
    "restart",
    "experimental",
    "autoscale",
    "statics",
)
# Accepted and kept in AppConfig.raw; Ferry does not act on them yet.
_RAW_SECTIONS = ("metrics",)
_IGNORED_KEYS = ("swap_size_mb", "console_command", "host_dedication_id")
_UNSUPPORTED_TOP_LEVEL = {
    "machine_checks": "remove it; Ferry runs [checks] and service checks",
    "machine_config": "remove it and describe the machine with [[vm]] and [experimental]",
    "container": "remove it; Ferry runs one container per machine",
    # Not silently skipped: data written to a missing volume would be lost on the next deploy.
    "mounts": "volumes are planned; until then keep data in a database outside the machines "
    "(a machine's disk is replaced on every deploy)",
    "files": "put them in the image (COPY in the Dockerfile) or pass values in [env]",
}
_APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SIGNALS = frozenset(
    member.name for member in signal.Signals if not member.name.startswith("SIGRT")
)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def find_config(cwd: Path) -> Path | None:
    """``cwd/fly.toml`` if it exists, else ``None``. Does not search parent directories."""
    candidate = cwd / CONFIG_FILENAME
    return candidate if candidate.is_file() else None


def load_app_config(path: str | Path) -> AppConfig:
    """Read and parse the fly.toml at ``path`` (a directory means its ``fly.toml``).

    Blocking (reads one file). Raises ``ConfigError`` when the file is missing,
    unreadable, not UTF-8, or wrong in any way ``parse_app_config`` checks.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file",
            hint="create a fly.toml (see docs/fly-toml.md) or give its path",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    return parse_app_config(text, filename=str(path), base_dir=path.parent.absolute())


def parse_app_config(
    text: str, *, filename: str = CONFIG_FILENAME, base_dir: Path | None = None
) -> AppConfig:
    """Parse fly.toml ``text`` into an ``AppConfig``.

    ``filename`` is only used in messages; ``base_dir`` (default: the current
    directory) anchors relative paths such as ``[build] dockerfile``. Pure apart
    from reading the current directory when ``base_dir`` is None. Stops at the
    first problem and raises ``ConfigError`` naming the file, the line (found by
    searching the text, see ``ferry.config.locate``) and the key. Unknown keys
    are errors, unlike flyctl which only warns, so typos are caught.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(filename, str(exc)) from None
    root = Table(raw, (), Source(filename, KeyLocator(text)))
    root.check_keys(
        (
            *_SECTIONS,
            *_RAW_SECTIONS,
            *_IGNORED_KEYS,
            "app",
            "primary_region",
            "kill_signal",
            "kill_timeout",
        ),
        unsupported=_UNSUPPORTED_TOP_LEVEL,
    )
    for key in _RAW_SECTIONS:
        if key in raw and not isinstance(raw[key], dict | list):
            raise root.error(key, f"must be a table or an array of tables, got {show(raw[key])}")
    http_table = root.table("http_service")
    services = [parse_http_service(http_table)] if http_table is not None else []
    services += parse_services(root.tables("services"))
    return AppConfig(
        app=_app_name(root),
        primary_region=root.optional_string("primary_region"),
        kill_signal=_kill_signal(root),
        kill_timeout=root.duration("kill_timeout", 5.0, maximum=MAX_KILL_TIMEOUT_SECONDS),
        build=parse_build(root.table("build"), base_dir or Path.cwd()),
        env=parse_env(root.table("env")),
        services=services,
        checks=parse_checks(root.table("checks")),
        guest=parse_vm(root.tables("vm")),
        deploy=parse_deploy(root.table("deploy")),
        restart=parse_restart(root.tables("restart")),
        init=parse_experimental(root.table("experimental")),
        process=parse_processes(root.table("processes")),
        autoscale=parse_autoscale(root.table("autoscale")),
        statics=parse_statics(root.tables("statics")),
        http_service_internal_port=services[0].internal_port if http_table is not None else None,
        raw=raw,
    )


def _syntax_error(filename: str, message: str) -> ConfigError:
    match = _TOML_POSITION.search(message)
    if match is None:
        detail = message.replace("(at end of document)", "at the end of the file").strip()
        return ConfigError(f"{filename}: syntax error: {detail}", hint="check quotes and brackets")
    detail = message[: match.start()]
    hint = 'strings need double quotes, e.g. key = "value"' if "Invalid value" in detail else None
    return ConfigError(
        f"{filename}:{match.group(1)}: syntax error: {detail} (column {match.group(2)})", hint=hint
    )


def _app_name(root: Table) -> str | None:
    name = root.optional_string("app")
    if name is not None and not _APP_NAME.match(name):
        raise root.error(
            "app",
            f"must be lowercase letters, digits and dashes (at most 63), got {show(name)}",
        )
    return name


def _kill_signal(root: Table) -> str:
    written = root.string("kill_signal", "SIGINT")
    name = written.upper()
    if not name.startswith("SIG"):
        name = f"SIG{name}"
    if name not in _SIGNALS:
        raise root.error(
            "kill_signal",
            f'must be a signal name such as "SIGINT" or "SIGTERM", got {show(written)}',
        )
    return name
