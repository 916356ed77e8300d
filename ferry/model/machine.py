"""Machines in the Fly Machines API shape: the config a user asks for and the API object.

Field names and JSON shapes follow Fly's Machines API, so a request written for
Fly works here. Ferry-only fields are marked as such in their docstrings.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ferry.errors import ValidationError as FerryValidationError
from ferry.model.duration import parse_duration
from ferry.model.sizes import DEFAULT_SIZE, preset

#: Fly allows at most this many ``[[statics]]`` per app.
MAX_STATICS = 10


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GuestConfig(_Frozen):
    """CPU and memory of a machine (``config.guest``)."""

    cpu_kind: Literal["shared", "performance"] = "shared"
    cpus: int = Field(default=1, ge=1, le=64)
    memory_mb: int = Field(default=256, ge=64, le=262144)

    @classmethod
    def from_size(cls, size: str) -> GuestConfig:
        """The guest of a size preset such as ``shared-cpu-1x``; raises ``ValidationError``."""
        kind, cpus, memory_mb = preset(size)
        return cls.model_validate({"cpu_kind": kind, "cpus": cpus, "memory_mb": memory_mb})


class RestartPolicy(_Frozen):
    """What the host does when the machine's process exits (``config.restart``)."""

    policy: Literal["no", "always", "on-failure"] = "on-failure"
    max_retries: int = Field(default=10, ge=0)


class InitConfig(_Frozen):
    """Overrides of the image's entrypoint and command (``config.init``)."""

    exec: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    tty: bool = False


class StopConfig(_Frozen):
    """How a machine is stopped: send ``signal``, wait ``timeout``, then SIGKILL."""

    signal: str = "SIGINT"
    timeout: str = "5s"

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_is_duration(cls, value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            raise ValueError("timeout must be a duration such as '5s'")
        parse_duration(value)
        return value

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)


class StopOverride(_Frozen):
    """The signal and timeout one stop request asked for (Ferry's ``stop_override``).

    Either field may be missing: the missing one comes from the machine's
    ``config.stop_config`` when the agent stops it (see ``Machine.effective_stop``).
    ``timeout`` is kept as a duration string; a bare number means seconds.
    ``signal`` is stored as given: the API normalizes and checks it first.
    """

    signal: str | None = None
    timeout: str | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_is_duration(cls, value: object) -> str | None:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            raise ValueError("timeout must be a duration such as '5s'")
        try:
            parse_duration(value)
        except FerryValidationError as exc:
            raise ValueError(exc.message) from None
        return value

    def over(self, base: StopConfig) -> StopConfig:
        """``base`` with this request's fields put in place of its own."""
        return StopConfig(
            signal=self.signal if self.signal is not None else base.signal,
            timeout=self.timeout if self.timeout is not None else base.timeout,
        )


class CheckConfig(_Frozen):
    """A health check (``config.checks.<name>`` or a service's HTTP/TCP check)."""

    type: Literal["http", "tcp"] = "http"
    port: int | None = Field(default=None, ge=1, le=65535)
    interval: str = "15s"
    timeout: str = "10s"
    grace_period: str = "0s"
    method: str = "GET"
    path: str = "/"
    protocol: Literal["http", "https"] = "http"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("interval", "timeout", "grace_period", mode="before")
    @classmethod
    def _is_duration(cls, value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            raise ValueError("must be a duration such as '10s'")
        parse_duration(value)
        return value


class ServicePort(_Frozen):
    """A public port of a service and the handlers in front of it."""

    port: int | None = Field(default=None, ge=1, le=65535)
    start_port: int | None = None
    end_port: int | None = None
    handlers: list[str] = Field(default_factory=list)
    force_https: bool = False


class Concurrency(_Frozen):
    """Load limits the proxy honours per machine."""

    type: Literal["connections", "requests"] = "connections"
    soft_limit: int = Field(default=20, ge=1)
    hard_limit: int | None = Field(default=None, ge=1)


class ServiceConfig(_Frozen):
    """A service the edge proxy routes to (``config.services[]``)."""

    protocol: Literal["tcp", "udp"] = "tcp"
    internal_port: int = Field(default=8080, ge=1, le=65535)
    ports: list[ServicePort] = Field(default_factory=list)
    autostart: bool = True
    autostop: Literal["off", "stop", "suspend"] = "off"
    min_machines_running: int = Field(default=0, ge=0)
    concurrency: Concurrency | None = None
    checks: list[CheckConfig] = Field(default_factory=list)

    @field_validator("autostop", mode="before")
    @classmethod
    def _autostop_bool(cls, value: object) -> object:
        if value is True:
            return "stop"
        if value is False:
            return "off"
        return value


class StaticConfig(_Frozen):
    """Files of the image the edge serves itself (``config.statics[]``, fly.toml ``[[statics]]``).

    A GET or HEAD whose path starts with ``url_prefix`` is answered from the
    image's files under ``guest_path``; a path with no such file goes on to the
    app, as on Fly. ``index_document`` (a file name) answers a directory path.
    ``tigris_bucket`` is Fly's object storage, which Ferry does not have: refused.
    """

    guest_path: str
    url_prefix: str
    tigris_bucket: str | None = None
    index_document: str | None = None

    @field_validator("guest_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or "\x00" in value:
            raise ValueError(f"guest_path must be an absolute path without '..', got {value!r}")
        return value

    @field_validator("url_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in "?#\x00 "):
            raise ValueError(f"url_prefix must be a URL path starting with '/', got {value!r}")
        return value

    @field_validator("tigris_bucket")
    @classmethod
    def _no_bucket(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "tigris_bucket is not supported by Ferry (it has no object storage); "
                "serve the files from the image with guest_path"
            )
        return None

    @field_validator("index_document")
    @classmethod
    def _file_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or value in (".", "..")):
            raise ValueError(f"index_document must be a file name, got {value!r}")
        return value


class MachineConfig(_Frozen):
    """What a machine should be (``config`` of the Machines API). Only ``image`` is required."""

    image: str = Field(min_length=1)
    guest: GuestConfig | None = None
    size: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    auto_destroy: bool = False
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    init: InitConfig = Field(default_factory=InitConfig)
    services: list[ServiceConfig] = Field(default_factory=list)
    checks: dict[str, CheckConfig] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    stop_config: StopConfig | None = None
    statics: list[StaticConfig] = Field(default_factory=list, max_length=MAX_STATICS)

    @field_validator("statics")
    @classmethod
    def _statics_need_pinned_image(
        cls, value: list[StaticConfig], info: ValidationInfo
    ) -> list[StaticConfig]:
        image = info.data.get("image", "")
        if value and "@sha256:" not in image:
            raise ValueError(
                "statics need an image pinned by digest (registry/repo@sha256:…), "
                f"got {image!r}: the edge serves the files of exactly that image"
            )
        return value

    @model_validator(mode="after")
    def _size_or_guest(self) -> MachineConfig:
        if self.size is not None and self.guest is not None:
            raise ValueError("give either 'size' or 'guest', not both")
        if self.size is not None:
            preset(self.size)
        return self

    @property
    def effective_guest(self) -> GuestConfig:
        """The guest resources, resolving ``size`` and the default preset."""
        if self.guest is not None:
            return self.guest
        return GuestConfig.from_size(self.size or DEFAULT_SIZE)

    @property
    def effective_stop(self) -> StopConfig:
        return self.stop_config or StopConfig()


class MachineState(StrEnum):
    """Fly's machine states (the subset Ferry reaches)."""

    CREATED = "created"
    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    REPLACING = "replacing"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"


class DesiredState(StrEnum):
    """What the control plane wants a machine to be; the agent drives actual state there."""

    STARTED = "started"
    STOPPED = "stopped"
    DESTROYED = "destroyed"


class ImageRef(_Frozen):
    """The resolved image of a machine (``image_ref``)."""

    registry: str = ""
    repository: str = ""
    tag: str = ""
    digest: str = ""


class MachineEvent(_Frozen):
    """One entry of a machine's event log (``events[]``)."""

    id: str
    type: str
    status: str
    source: Literal["user", "flyd", "ferry"] = "flyd"
    timestamp: int  # milliseconds since the epoch, as Fly reports it
    request: dict[str, object] = Field(default_factory=dict)


class CheckStatus(_Frozen):
    """The last result of one health check."""

    name: str
    status: Literal["passing", "warning", "critical"] = "warning"
    output: str = ""
    updated_at: datetime | None = None


class Machine(_Frozen):
    """A machine as the API returns it.

    ``host_id`` and ``desired_state`` are Ferry additions; ``revision`` is the
    optimistic-concurrency counter every write must carry. ``generation`` is
    bumped by every start (of a machine that is not running), restart and
    signal request; with ``pending_signal`` set it asks the agent to deliver
    that signal, without it to (re)start the process. The agent acts once per
    generation, which keeps its loop level-triggered. ``stop_override``
    (Ferry-only) holds the signal and timeout of the last stop request until
    the machine is started again; the agent stops it by ``effective_stop``.
    """

    id: str
    name: str
    app_name: str
    state: MachineState
    desired_state: DesiredState
    region: str
    instance_id: str
    private_ip: str
    config: MachineConfig
    image_ref: ImageRef = Field(default_factory=ImageRef)
    host_id: str
    created_at: datetime
    updated_at: datetime
    events: list[MachineEvent] = Field(default_factory=list)
    checks: list[CheckStatus] = Field(default_factory=list)
    exit_code: int | None = None
    restart_count: int = 0
    generation: int = 0
    pending_signal: str | None = None
    stop_override: StopOverride | None = None
    revision: int = 0

    @property
    def effective_stop(self) -> StopConfig:
        """How the agent stops this machine now: the pending stop request over the config's."""
        base = self.config.effective_stop
        return self.stop_override.over(base) if self.stop_override is not None else base
