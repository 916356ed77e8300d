"""Read a fly.toml: find it, parse the TOML, check every section, build an ``AppConfig``."""

from __future__ import annotations

import base64
import re
import signal
import tomllib
from pathlib import Path

from ferry.config.app_config import AppConfig
from ferry.config.autoscale import parse_autoscale
from ferry.config.groups import FileSource, Scoped, group_names, parse_files, parse_processes
from ferry.config.locate import KeyLocator
from ferry.config.mounts import parse_mounts
from ferry.config.postgres import parse_postgres
from ferry.config.reader import Source, Table, show
from ferry.config.sections import (
    parse_build,
    parse_deploy,
    parse_env,
    parse_experimental,
    parse_restart,
    parse_vm,
)
from ferry.config.services import parse_checks, parse_http_service, parse_services
from ferry.config.statics import parse_statics
from ferry.config.waf import parse_waf
from ferry.errors import ConfigError
from ferry.model.machine_files import MAX_FILE_BYTES
from ferry.model.names import app_name_problem

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
    "files",
    "statics",
    "waf",
    "mounts",
    "postgres",
)
_IGNORED_TOP_LEVEL = {"console_command": "Ferry has no console command yet"}
_UNSUPPORTED_TOP_LEVEL = {
    "machine_checks": "remove it; Ferry runs [checks] and service checks",
    "machine_config": "remove it and describe the machine with [[vm]] and [experimental]",
    "container": "remove it; Ferry runs one container per machine",
    "mount": "the section is [[mounts]] (source, destination): see docs/volumes.md",
    "metrics": "Ferry does not scrape app metrics yet; remove the section",
    "swap_size_mb": "swap is not supported; size memory with [[vm]] memory",
    "host_dedication_id": "dedicated hosts are not supported",
}
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
    config = parse_app_config(text, filename=str(path), base_dir=path.parent.absolute())
    return read_local_files(config, str(path))


def read_local_files(config: AppConfig, filename: str = CONFIG_FILENAME) -> AppConfig:
    """``config`` with each ``[[files]] local_path`` read and sent as ``raw_value`` (base64).

    Blocking (reads the files). Raises ``ConfigError`` naming the file when
    one is missing, unreadable or too large.
    """
    files: list[Scoped[FileSource]] = []
    for scoped in config.files:
        source = scoped.value
        if source.local_path is not None and source.raw_value is None:
            try:
                content = source.local_path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"{filename}: [[files]] local_path {source.local_path} cannot be read:"
                    f" {exc.strerror or exc}",
                    hint="fix the path (relative paths start at the fly.toml's directory)",
                ) from None
            if len(content) > MAX_FILE_BYTES:
                raise ConfigError(
                    f"{filename}: [[files]] local_path {source.local_path} is larger than"
                    f" {MAX_FILE_BYTES} bytes",
                    hint="put large files in the image instead",
                )
            raw = base64.b64encode(content).decode()
            scoped = scoped.model_copy(
                update={"value": source.model_copy(update={"raw_value": raw})}
            )
        files.append(scoped)
    return config.model_copy(update={"files": files})


def parse_app_config(
    text: str, *, filename: str = CONFIG_FILENAME, base_dir: Path | None = None
) -> AppConfig:
    """Parse fly.toml ``text`` into an ``AppConfig``.

    ``filename`` is only used in messages; ``base_dir`` (default: the current
    directory) anchors relative paths such as ``[build] dockerfile``. Pure apart
    from reading the current directory when ``base_dir`` is None. Stops at the
    first problem and raises ``ConfigError`` naming the file, the line (found by
    searching the text, see ``ferry.config.locate``) and the key. Keys Fly
    documents that Ferry does not do are errors; unknown keys (and keys with
    no effect) are warnings in ``AppConfig.warnings``, as flyctl warns.
    ``[[files]] local_path`` is left unread (``load_app_config`` reads it).
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(filename, str(exc)) from None
    source = Source(filename, KeyLocator(text))
    root = Table(raw, (), source)
    root.check_keys(
        (*_SECTIONS, "app", "primary_region", "kill_signal", "kill_timeout"),
        unsupported=_UNSUPPORTED_TOP_LEVEL,
        ignored=_IGNORED_TOP_LEVEL,
    )
    processes = parse_processes(root.table("processes"))
    groups = group_names(processes)
    http_table = root.table("http_service")
    services = [parse_http_service(http_table, groups)] if http_table is not None else []
    services += parse_services(root.tables("services"), groups)
    autoscale = parse_autoscale(root.table("autoscale"))
    config = AppConfig(
        app=_app_name(root),
        primary_region=root.optional_string("primary_region"),
        kill_signal=_kill_signal(root),
        kill_timeout=root.duration("kill_timeout", 5.0, maximum=MAX_KILL_TIMEOUT_SECONDS, bare="s"),
        build=parse_build(root.table("build"), base_dir or Path.cwd()),
        env=parse_env(root.table("env")),
        processes=processes,
        services=services,
        checks=parse_checks(root.table("checks"), groups),
        vms=parse_vm(root.tables("vm"), groups),
        deploy=parse_deploy(root.table("deploy")),
        restarts=parse_restart(root.tables("restart"), groups),
        files=parse_files(root.tables("files"), groups, base_dir or Path.cwd()),
        init=parse_experimental(root.table("experimental")),
        autoscale=autoscale,
        postgres=parse_postgres(root.table("postgres"), autoscale),
        statics=parse_statics(root.tables("statics")),
        waf=parse_waf(root.table("waf")),
        mounts=parse_mounts(root.tables("mounts"), groups),
        http_service_internal_port=(
            services[0].value.internal_port if http_table is not None else None
        ),
        raw=raw,
    )
    return config.model_copy(update={"warnings": tuple(source.warnings)})


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
    problem = None if name is None else app_name_problem(name)
    if problem is not None:
        raise root.error(
            "app",
            "must be lowercase letters, digits and dashes (2-63, starting and ending with a "
            f"letter or digit): {show(name)} {problem}",
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
