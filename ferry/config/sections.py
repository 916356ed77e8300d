"""``[build]``, ``[env]``, ``[[vm]]``, ``[deploy]``, ``[[restart]]`` and ``[experimental]``.

Each function reads one parsed section through ``Table`` and returns model
objects, raising ``ConfigError`` (file, line, key) for the first problem.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from ferry.config.app_config import BuildConfig, DeployConfig
from ferry.config.groups import Scoped, scope_of
from ferry.config.reader import Table, show
from ferry.errors import ValidationError
from ferry.model import SIZE_PRESETS, GuestConfig, InitConfig, RestartPolicy

__all__ = [
    "parse_build",
    "parse_deploy",
    "parse_env",
    "parse_experimental",
    "parse_restart",
    "parse_vm",
]

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(gb|gib|g|mb|mib|m)?\s*$", re.IGNORECASE)
_RESTART_POLICIES = {"always": "always", "never": "no", "on-failure": "on-failure"}
_UNSUPPORTED_BUILD = {
    "builder": "build the image yourself and set [build] image, or use a dockerfile",
    "buildpacks": "build the image yourself and set [build] image, or use a dockerfile",
    "builtin": "use a dockerfile instead",
}
_MIN_MEMORY_MB, _MAX_MEMORY_MB = 64, 262144
# Keys flyctl itself ignores for a Machines app (Nomad-era or build-time only): a warning.
_IGNORED_EXPERIMENTAL = {
    key: "it has no effect on a Machines app"
    for key in (
        "auto_rollback",
        "enable_consul",
        "enable_etcd",
        "private_network",
        "allowed_public_ports",
        "attached",
        "lazy_load_images",
        "use_zstd",
        "machine_config",
    )
}
_IGNORED_BUILD = {
    "compression": "Ferry pushes layers with the registry's default compression",
    "compression_level": "Ferry pushes layers with the registry's default compression",
}
_UNSUPPORTED_VM = {
    "kernel_args": "machines are containers, not VMs: there is no kernel to pass arguments to",
    "host_dedication_id": "dedicated hosts are not supported",
    "persist_rootfs": "a machine's root filesystem is replaced on every start",
    "gpu_kind": "GPUs are not supported",
    "gpus": "GPUs are not supported",
}


def parse_build(table: Table | None, base_dir: Path) -> BuildConfig:
    """``[build]``; relative ``dockerfile`` and ``ignorefile`` are resolved against ``base_dir``."""
    if table is None:
        return BuildConfig()
    table.check_keys(
        ("image", "dockerfile", "args", "build-target", "ignorefile"),
        unsupported=_UNSUPPORTED_BUILD,
        ignored=_IGNORED_BUILD,
    )
    image = table.optional_string("image")
    dockerfile = table.optional_string("dockerfile")
    if image is not None and dockerfile is not None:
        raise table.fail(
            "dockerfile",
            "sets both image and dockerfile",
            hint="keep image to deploy a prebuilt image, or dockerfile to build one",
        )
    if dockerfile is not None and "://" in dockerfile:
        raise table.error("dockerfile", "must be a local path; URLs are not supported yet")
    ignorefile = table.optional_string("ignorefile")
    return BuildConfig(
        image=image,
        dockerfile=_resolve(base_dir, dockerfile),
        args=table.string_map("args"),
        target=table.optional_string("build-target"),
        ignorefile=_resolve(base_dir, ignorefile),
    )


def parse_env(table: Table | None) -> dict[str, str]:
    """``[env]``: names must not start with ``FLY_``; numbers and booleans become text."""
    if table is None:
        return {}
    for name in table.data:
        if name.upper().startswith("FLY_"):
            raise table.fail(
                name,
                f'variable "{name}" starts with FLY_, which is reserved for the platform',
                hint="rename it",
            )
    return table.strings()


def parse_vm(tables: list[Table], groups: tuple[str, ...]) -> list[Scoped[GuestConfig]]:
    """Each ``[[vm]]`` (or ``[vm]``) → a guest for the groups of its ``processes``.

    ``memory``/``cpus``/``cpu_kind`` override ``size``. Empty when the file
    has no vm section (machines get the default size).
    """
    return [Scoped(value=_guest(table), processes=scope_of(table, groups)) for table in tables]


def _guest(table: Table) -> GuestConfig:
    table.check_keys(
        ("size", "memory", "memory_mb", "cpus", "cpu_kind", "processes"),
        unsupported=_UNSUPPORTED_VM,
    )
    size = table.optional_string("size")
    cpu_kind = (
        table.choice("cpu_kind", ("shared", "performance"), "shared")
        if table.has("cpu_kind")
        else None
    )
    cpus = table.optional_integer("cpus", minimum=1, maximum=64)
    memory_mb = _memory(table)
    if size is not None:
        try:
            base = GuestConfig.from_size(size)
        except ValidationError as exc:
            raise table.error("size", f"is not a known size: {show(size)}", hint=exc.hint) from None
    else:
        kind = cpu_kind or "shared"
        preset = f"{kind}-cpu-{cpus or 1}x" if kind == "shared" else f"performance-{cpus or 1}x"
        base = GuestConfig.from_size(preset) if preset in SIZE_PRESETS else GuestConfig()
    return GuestConfig(
        cpu_kind=cpu_kind or base.cpu_kind,
        cpus=cpus or base.cpus,
        memory_mb=memory_mb or base.memory_mb,
    )


def parse_deploy(table: Table | None) -> DeployConfig:
    """``[deploy]``: ``strategy`` (rolling, immediate, canary, bluegreen), ``max_unavailable``,
    ``wait_timeout``, ``release_command`` (split as a shell would) and its timeout."""
    if table is None:
        return DeployConfig()
    table.check_keys(
        (
            "strategy",
            "max_unavailable",
            "wait_timeout",
            "release_command",
            "release_command_timeout",
        ),
        unsupported={
            "release_command_vm": "remove it; the release machine gets the app's [[vm]] size",
            "seed_command": "seed the database yourself",
        },
    )
    strategy = table.choice("strategy", ("rolling", "immediate", "canary", "bluegreen"), "rolling")
    max_unavailable = table.data.get("max_unavailable", 0.33)
    if (
        isinstance(max_unavailable, bool)
        or not isinstance(max_unavailable, int | float)
        or max_unavailable <= 0
        or (isinstance(max_unavailable, float) and 1 < max_unavailable != int(max_unavailable))
    ):
        raise table.error(
            "max_unavailable",
            f"must be a whole number of machines (1 or more) or a fraction between 0 and 1,"
            f" got {show(max_unavailable)}",
        )
    release_command = _release_command(table)
    if release_command is None and table.has("release_command_timeout"):
        raise table.error(
            "release_command_timeout", "is set but there is no release_command to time"
        )
    return DeployConfig(
        strategy=strategy,
        max_unavailable=float(max_unavailable),
        wait_timeout=table.duration("wait_timeout", 300.0),
        release_command=release_command,
        release_command_timeout=table.duration("release_command_timeout", 300.0),
    )


def _release_command(table: Table) -> list[str] | None:
    """``release_command = "bin/migrate --all"`` → ``["bin/migrate", "--all"]`` (shell quoting)."""
    text = table.optional_string("release_command")
    if text is None:
        return None
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise table.error("release_command", f"cannot be split into words: {exc}") from None
    if not argv:
        raise table.error("release_command", "must not be empty")
    return argv


def parse_restart(tables: list[Table], groups: tuple[str, ...]) -> list[Scoped[RestartPolicy]]:
    """Each ``[[restart]]`` for the groups of its ``processes`` (none: the default).

    ``never`` becomes the API's ``"no"``; ``retries`` → ``max_retries``. A
    group gets the section that names it, else the one without ``processes``;
    two sections naming one group (or two without ``processes``) are an error.
    """
    policies: list[Scoped[RestartPolicy]] = []
    for table in tables:
        table.check_keys(("policy", "retries", "processes"))
        scope = scope_of(table, groups)
        clash = _restart_clash(scope, policies)
        if clash is not None:
            raise table.fail(
                "processes" if table.has("processes") else None,
                f"covers {clash}, as an earlier [[restart]] does",
                hint="keep one [[restart]] without processes (the default) and one per group",
            )
        policy = table.choice("policy", tuple(_RESTART_POLICIES), "on-failure")
        retries = table.optional_integer("retries", minimum=0)
        value = (
            RestartPolicy(policy=_RESTART_POLICIES[policy])
            if retries is None
            else RestartPolicy(policy=_RESTART_POLICIES[policy], max_retries=retries)
        )
        policies.append(Scoped(value=value, processes=scope))
    return policies


def _restart_clash(scope: tuple[str, ...], earlier: list[Scoped[RestartPolicy]]) -> str | None:
    """What two ``[[restart]]`` sections both claim: every group, or one named group."""
    if not scope:
        return "every group" if any(not p.processes for p in earlier) else None
    for policy in earlier:
        for group in scope:
            if group in policy.processes:
                return f'the process group "{group}"'
    return None


def parse_experimental(table: Table | None) -> InitConfig:
    """``[experimental]`` ``cmd``, ``entrypoint``, ``exec`` → ``init``; strings are shell-split."""
    if table is None:
        return InitConfig()
    table.check_keys(("cmd", "entrypoint", "exec"), ignored=_IGNORED_EXPERIMENTAL)
    return InitConfig(
        cmd=table.command("cmd"),
        entrypoint=table.command("entrypoint"),
        exec=table.command("exec"),
    )


def _memory(table: Table) -> int | None:
    """``memory`` as "1gb", "512mb", "512" or an integer number of MB (``memory_mb`` too)."""
    key = "memory" if table.has("memory") else "memory_mb"
    value = table.data.get(key)
    if value is None:
        return None
    match = _MEMORY.match(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        megabytes = float(value)
    elif match:
        unit = (match.group(2) or "mb").lower()
        megabytes = float(match.group(1)) * (1024 if unit.startswith("g") else 1)
    else:
        raise table.error(key, f'must be a size such as "512mb" or "1gb", got {show(value)}')
    if megabytes != int(megabytes) or not _MIN_MEMORY_MB <= megabytes <= _MAX_MEMORY_MB:
        raise table.error(
            key,
            f"must be a whole number of MB between {_MIN_MEMORY_MB} and {_MAX_MEMORY_MB},"
            f" got {show(value)}",
        )
    return int(megabytes)


def _resolve(base_dir: Path, path: str | None) -> Path | None:
    if path is None:
        return None
    candidate = Path(path)
    return (candidate if candidate.is_absolute() else base_dir / candidate).absolute()
