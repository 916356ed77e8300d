"""The parsed fly.toml (``AppConfig``) and its translation to a Machines-API ``MachineConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ferry.config.groups import FileSource, Scoped, group_names
from ferry.config.mounts import MountSource
from ferry.errors import ConfigError, ValidationError
from ferry.model import (
    CheckConfig,
    GuestConfig,
    InitConfig,
    MachineConfig,
    MachineFile,
    RestartPolicy,
    ServiceConfig,
    StopConfig,
    format_duration,
)
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.machine_statics import StaticConfig
from ferry.model.machine_waf import WafConfig
from ferry.model.postgres_follow import FollowPolicy

__all__ = ["AppConfig", "BuildConfig", "DeployConfig"]

T = TypeVar("T")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BuildConfig(_Frozen):
    """``[build]``: a prebuilt ``image`` or a ``dockerfile`` to build (never both).

    ``dockerfile`` and ``ignorefile`` are absolute, resolved against the
    fly.toml's directory. Both ``image`` and ``dockerfile`` unset means "build
    the Dockerfile next to fly.toml", which the deploy command decides.
    """

    image: str | None = None
    dockerfile: Path | None = None
    args: dict[str, str] = Field(default_factory=dict)
    target: str | None = None
    ignorefile: Path | None = None


class DeployConfig(_Frozen):
    """``[deploy]``: how a new release replaces running machines.

    ``max_unavailable`` is a count (>= 1) or a fraction of the machines (< 1);
    ``wait_timeout`` and ``release_command_timeout`` are in seconds.
    ``release_command`` is the argv that replaces the image's CMD in the
    temporary release machine (``None``: no release command).
    """

    strategy: Literal["rolling", "immediate", "canary", "bluegreen"] = "rolling"
    max_unavailable: float = 0.33
    wait_timeout: float = 300.0
    release_command: list[str] | None = None
    release_command_timeout: float = 300.0


class AppConfig(_Frozen):
    """Everything Ferry reads from a fly.toml. Frozen; build one with ``parse_app_config``.

    ``kill_timeout`` is in seconds. ``processes`` maps each ``[processes]``
    group to its command (empty without the section: one group, ``app``).
    ``services`` lists ``[http_service]`` first, then each ``[[services]]``;
    services, checks, vms, restarts and files are ``Scoped`` by their
    ``processes = [...]``. ``warnings`` are ``file:line:`` sentences about keys
    Ferry ignored (unknown ones included). ``autoscale`` is Ferry's own
    ``[autoscale]`` section, ``None`` when the file has none. ``raw`` is the
    whole parsed TOML (``ferry config show --local`` prints it).
    """

    app: str | None = None
    primary_region: str | None = None
    kill_signal: str = "SIGINT"
    kill_timeout: float = 5.0
    build: BuildConfig = Field(default_factory=BuildConfig)
    env: dict[str, str] = Field(default_factory=dict)
    processes: dict[str, list[str]] = Field(default_factory=dict)
    services: list[Scoped[ServiceConfig]] = Field(default_factory=list)
    checks: dict[str, Scoped[CheckConfig]] = Field(default_factory=dict)
    vms: list[Scoped[GuestConfig]] = Field(default_factory=list)
    restarts: list[Scoped[RestartPolicy]] = Field(default_factory=list)
    files: list[Scoped[FileSource]] = Field(default_factory=list)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    init: InitConfig = Field(default_factory=InitConfig)
    http_service_internal_port: int | None = None
    autoscale: AutoscalePolicy | None = None
    warnings: tuple[str, ...] = ()
    statics: list[StaticConfig] = Field(default_factory=list)
    waf: WafConfig | None = None  # [waf], Ferry's own (docs/waf.md)
    mounts: list[Scoped[MountSource]] = Field(default_factory=list)  # [[mounts]]
    postgres: FollowPolicy | None = None  # [postgres], Ferry's own (docs/postgres.md)
    raw: dict[str, Any] = Field(default_factory=dict)

    @property
    def groups(self) -> tuple[str, ...]:
        """The app's process groups in file order (``("app",)`` without ``[processes]``)."""
        return group_names(self.processes)

    def group_has_services(self, group: str) -> bool:
        """Whether the edge routes to this group's machines (any service applies to it)."""
        return any(scoped.applies_to(group) for scoped in self.services)

    def check_group(self, group: str | None) -> str:
        """``group``, or the only group when None; ``ValidationError`` otherwise."""
        groups = self.groups
        if group is None:
            if len(groups) > 1:
                raise ValidationError(
                    f"the app has several process groups ({', '.join(groups)}); say which one",
                    hint="e.g. `ferry scale count web=2 worker=1`",
                )
            return groups[0]
        if group not in groups:
            raise ValidationError(
                f"unknown process group {group!r}; fly.toml defines {', '.join(groups)}",
                hint="use a group named in [processes]",
            )
        return group

    def machine_config(
        self, image: str, *, region: str | None = None, group: str | None = None
    ) -> MachineConfig:
        """The Machines-API config of a machine of ``group`` running ``image``.

        The group's command replaces the image's CMD; only the services,
        checks, ``[[vm]]``, ``[[restart]]`` and ``[[files]]`` that apply to the
        group are included (of ``[[vm]]``/``[[restart]]``: a section naming the
        group over one without ``processes``, then the last in the file).
        ``metadata.fly_process_group`` and env ``FLY_PROCESS_GROUP`` name
        the group, as Fly sets them. ``PRIMARY_REGION`` is ``primary_region``
        (overriding ``[env]``), else ``region``. ``group`` may be None for an
        app with one group. Pure; raises ``ValidationError`` for an unknown
        group (or None with several), ``ConfigError`` for a ``[[files]]``
        local_path not read yet (``load_app_config`` reads them).
        """
        name = self.check_group(group)
        env = dict(self.env)
        init = self.init
        command = self.processes.get(name)
        if command:  # as on Fly: the group's command replaces the CMD
            init = init.model_copy(update={"cmd": list(command)})
        primary = self.primary_region or region
        if primary is not None:
            env["PRIMARY_REGION"] = primary
        env["FLY_PROCESS_GROUP"] = name
        guests = _most_specific(self.vms, name)
        restarts = _most_specific(self.restarts, name)
        return MachineConfig(
            image=image,
            guest=guests,
            env=env,
            services=[scoped.value for scoped in self.services if scoped.applies_to(name)],
            checks={
                key: scoped.value for key, scoped in self.checks.items() if scoped.applies_to(name)
            },
            restart=restarts or RestartPolicy(),
            init=init,
            statics=list(self.statics),
            waf=self.waf,
            stop_config=StopConfig(
                signal=self.kill_signal, timeout=format_duration(self.kill_timeout)
            ),
            files=[_machine_file(scoped.value) for scoped in self.files if scoped.applies_to(name)],
            metadata={"fly_platform_version": "v2", "fly_process_group": name},
        )


def _most_specific(sections: list[Scoped[T]], group: str) -> T | None:
    matching = sorted(
        (scoped for scoped in sections if scoped.applies_to(group)),
        key=lambda scoped: bool(scoped.processes),  # stable: file order within each kind
    )
    return matching[-1].value if matching else None


def _machine_file(source: FileSource) -> MachineFile:
    if source.raw_value is None:
        raise ConfigError(
            f"[[files]] {source.guest_path}: local_path {source.local_path} was not read",
            hint="load the fly.toml with load_app_config, which reads local files",
        )
    return MachineFile(guest_path=source.guest_path, raw_value=source.raw_value)
