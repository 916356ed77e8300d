"""The parsed fly.toml (``AppConfig``) and its translation to a Machines-API ``MachineConfig``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ferry.model import (
    CheckConfig,
    GuestConfig,
    InitConfig,
    MachineConfig,
    RestartPolicy,
    ServiceConfig,
    StopConfig,
    format_duration,
)
from ferry.model.autoscale import AutoscalePolicy
from ferry.model.machine import StaticConfig

__all__ = ["AppConfig", "BuildConfig", "DeployConfig", "ProcessGroup"]

#: The process group of an app whose fly.toml has no ``[processes]``.
DEFAULT_PROCESS_GROUP = "app"


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
    ``wait_timeout`` is in seconds.
    """

    strategy: Literal["rolling", "immediate"] = "rolling"
    max_unavailable: float = 0.33
    wait_timeout: float = 300.0


class ProcessGroup(_Frozen):
    """The one ``[processes]`` group: its name and the command that replaces the image's CMD."""

    name: str
    cmd: list[str]


class AppConfig(_Frozen):
    """Everything Ferry reads from a fly.toml. Frozen; build one with ``parse_app_config``.

    ``kill_timeout`` is in seconds. ``services`` lists ``[http_service]`` first,
    then each ``[[services]]``. ``process``: the ``[processes]`` group (one only),
    ``None`` without the section. ``raw`` is the whole parsed TOML, for the
    section Ferry accepts but does not use yet (``[metrics]``). ``autoscale``
    is Ferry's own ``[autoscale]`` section, ``None`` when the file has none.
    """

    app: str | None = None
    primary_region: str | None = None
    kill_signal: str = "SIGINT"
    kill_timeout: float = 5.0
    build: BuildConfig = Field(default_factory=BuildConfig)
    env: dict[str, str] = Field(default_factory=dict)
    services: list[ServiceConfig] = Field(default_factory=list)
    checks: dict[str, CheckConfig] = Field(default_factory=dict)
    guest: GuestConfig | None = None
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    restart: RestartPolicy | None = None
    init: InitConfig = Field(default_factory=InitConfig)
    process: ProcessGroup | None = None
    http_service_internal_port: int | None = None
    autoscale: AutoscalePolicy | None = None
    statics: list[StaticConfig] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    def machine_config(self, image: str, *, region: str | None = None) -> MachineConfig:
        """The Machines-API config of a machine of this app running ``image``.

        ``PRIMARY_REGION`` is set from ``primary_region`` (overriding ``[env]``),
        or from ``region`` — where the machine is being created — when the file
        names no primary region. Pure; raises nothing for a config that parsed.
        """
        env = dict(self.env)
        init = self.init
        if self.process is not None:  # as on Fly: the group's command replaces the CMD
            init = init.model_copy(update={"cmd": list(self.process.cmd)})
        primary = self.primary_region or region
        if primary is not None:
            env["PRIMARY_REGION"] = primary
        return MachineConfig(
            image=image,
            guest=self.guest,
            env=env,
            services=list(self.services),
            checks=dict(self.checks),
            restart=self.restart or RestartPolicy(),
            init=init,
            statics=list(self.statics),
            stop_config=StopConfig(
                signal=self.kill_signal, timeout=format_duration(self.kill_timeout)
            ),
            metadata={
                "fly_platform_version": "v2",
                "fly_process_group": (
                    self.process.name if self.process is not None else DEFAULT_PROCESS_GROUP
                ),
            },
        )
