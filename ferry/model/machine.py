"""Machines in the Fly Machines API shape: the config a user asks for and the API object.

Field names and JSON shapes follow Fly's Machines API, so a request written for
Fly works here. Ferry-only fields are marked as such in their docstrings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ferry.errors import ValidationError as FerryValidationError
from ferry.model.duration import number_as_duration, parse_duration
from ferry.model.machine_files import MAX_FILES, MachineFile
from ferry.model.machine_statics import MAX_STATICS, StaticConfig
from ferry.model.machine_tls import handlers_problem, http_options_problem, tls_options_problem
from ferry.model.machine_waf import WafConfig
from ferry.model.metadata import metadata_problem
from ferry.model.refusals import (
    CHECK_REFUSED,
    CONFIG_REFUSED,
    GUEST_REFUSED,
    INIT_REFUSED,
    PORT_REFUSED,
    REQUEST_CONTEXT,
    SERVICE_REFUSED,
    FlyConfigModel,
    is_request,
)
from ferry.model.sizes import DEFAULT_SIZE, preset
from ferry.model.volume import MachineMount

#: Handlers the edge implements; ``pg_tls``/``proxy_proto`` are refused.
SUPPORTED_HANDLERS = frozenset({"http", "tls"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class GuestConfig(FlyConfigModel):
    """CPU and memory of a machine (``config.guest``)."""

    cpu_kind: Literal["shared", "performance"] = "shared"
    cpus: int = Field(default=1, ge=1, le=64)
    memory_mb: int = Field(default=256, ge=64, le=262144)

    refused_fields: ClassVar[Mapping[str, str]] = GUEST_REFUSED

    @classmethod
    def from_size(cls, size: str) -> GuestConfig:
        """The guest of a size preset such as ``shared-cpu-1x``; raises ``ValidationError``."""
        kind, cpus, memory_mb = preset(size)
        return cls.model_validate({"cpu_kind": kind, "cpus": cpus, "memory_mb": memory_mb})


class RestartPolicy(FlyConfigModel):
    """What the host does when the machine's process exits (``config.restart``)."""

    policy: Literal["no", "always", "on-failure"] = "on-failure"
    max_retries: int = Field(default=10, ge=0)


class InitConfig(FlyConfigModel):
    """Overrides of the image's entrypoint and command (``config.init``)."""

    exec: list[str] | None = None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    tty: bool = False

    refused_fields: ClassVar[Mapping[str, str]] = INIT_REFUSED


class StopConfig(FlyConfigModel):
    """How a machine is stopped: send ``signal``, wait ``timeout``, then SIGKILL."""

    signal: str = "SIGINT"
    timeout: str = "5s"

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout_is_duration(cls, value: object) -> str:
        value = number_as_duration(value)
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
        value = number_as_duration(value)
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


class CheckConfig(FlyConfigModel):
    """A health check (``config.checks.<name>`` or a service's HTTP/TCP check).

    ``method``, ``path``, ``protocol``, ``headers``, ``tls_skip_verify`` and
    ``tls_server_name`` are carried as Fly defines them, for the prober.
    """

    type: Literal["http", "tcp"] = "http"
    port: int | None = Field(default=None, ge=1, le=65535)
    interval: str = "15s"
    timeout: str = "10s"
    grace_period: str = "0s"
    method: str = "GET"
    path: str = "/"
    protocol: Literal["http", "https"] = "http"
    tls_skip_verify: bool = False
    tls_server_name: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    refused_fields: ClassVar[Mapping[str, str]] = CHECK_REFUSED

    @field_validator("headers", mode="before")
    @classmethod
    def _fly_headers(cls, value: object) -> object:
        """Fly's shape ``[{"name": N, "values": [V, …]}]`` → ``{N: "V, …"}``.

        The dict shape is kept as it is. Several values of one header are
        joined with ", " (RFC 9110 allows that for list-valued fields), so
        every consumer keeps reading ``dict[str, str]``.
        """
        if not isinstance(value, list):
            return value
        headers: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError('each header must be {"name": "...", "values": ["..."]}')
            values = item.get("values", [])
            if isinstance(values, str):
                values = [values]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"values of header {item['name']!r} must be a list of strings")
            unknown = set(item) - {"name", "values"}
            if unknown:
                raise ValueError(f"unknown key(s) {sorted(unknown)} in header {item['name']!r}")
            joined = ", ".join(values)
            name = item["name"]
            headers[name] = f"{headers[name]}, {joined}" if name in headers else joined
        return headers

    @field_validator("interval", "timeout", "grace_period", mode="before")
    @classmethod
    def _is_duration(cls, value: object) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}s"
        if not isinstance(value, str):
            raise ValueError("must be a duration such as '10s'")
        parse_duration(value)
        return value


class ServicePort(FlyConfigModel):
    """A public port of a service and the handlers in front of it.

    ``tls_options``/``http_options`` are kept as sent (Fly's shapes) once
    ``ferry.model.machine_tls`` found that the edge does what they ask.
    """

    port: int | None = Field(default=None, ge=1, le=65535)
    start_port: int | None = None
    end_port: int | None = None
    handlers: list[str] = Field(default_factory=list)
    force_https: bool = False
    tls_options: dict[str, Any] | None = None
    http_options: dict[str, Any] | None = None

    refused_fields: ClassVar[Mapping[str, str]] = PORT_REFUSED

    @model_validator(mode="after")
    def _edge_does_it(self, info: ValidationInfo) -> ServicePort:
        if not is_request(info):
            return self
        problem = (
            handlers_problem(self.handlers, self.port)
            or tls_options_problem(self.tls_options)
            or http_options_problem(self.http_options)
        )
        if problem:
            raise ValueError(problem)
        if self.force_https and "http" not in self.handlers:
            raise ValueError('force_https needs the "http" handler on the same port')
        return self


class Concurrency(FlyConfigModel):
    """Load limits the proxy honours per machine."""

    type: Literal["connections", "requests"] = "connections"
    soft_limit: int = Field(default=20, ge=1)
    hard_limit: int | None = Field(default=None, ge=1)


class ServiceConfig(FlyConfigModel):
    """A service the edge proxy routes to (``config.services[]``)."""

    protocol: Literal["tcp", "udp"] = "tcp"
    internal_port: int = Field(default=8080, ge=1, le=65535)
    ports: list[ServicePort] = Field(default_factory=list)
    autostart: bool = True
    autostop: Literal["off", "stop", "suspend"] = "off"
    min_machines_running: int = Field(default=0, ge=0)
    concurrency: Concurrency | None = None
    checks: list[CheckConfig] = Field(default_factory=list)

    refused_fields: ClassVar[Mapping[str, str]] = SERVICE_REFUSED

    @field_validator("protocol")
    @classmethod
    def _no_udp(cls, value: str, info: ValidationInfo) -> str:
        if value == "udp" and is_request(info):
            raise ValueError(
                'protocol "udp" is not supported yet by Ferry (the edge forwards TCP only)'
            )
        return value

    @field_validator("autostop", mode="before")
    @classmethod
    def _autostop_bool(cls, value: object) -> object:
        if value is True:
            return "stop"
        if value is False:
            return "off"
        return value


class MachineConfig(FlyConfigModel):
    """What a machine should be (``config`` of the Machines API). Only ``image`` is required.

    Every other field of Fly's config is refused by name (``ferry.model.refusals``).
    """

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
    files: list[MachineFile] = Field(default_factory=list, max_length=MAX_FILES)
    statics: list[StaticConfig] = Field(default_factory=list, max_length=MAX_STATICS)
    #: Ferry extension (fly.toml ``[waf]``): the edge's web application firewall.
    waf: WafConfig | None = None
    #: Volumes mounted into the machine (Fly allows one; so does Ferry).
    mounts: list[MachineMount] = Field(default_factory=list, max_length=1)

    refused_fields: ClassVar[Mapping[str, str]] = CONFIG_REFUSED

    @field_validator("mounts", mode="before")
    @classmethod
    def _no_mounts(cls, value: object) -> object:
        return [] if value is None else value  # Fly's clients may send null for none

    @model_validator(mode="after")
    def _files_outside_mounts(self) -> MachineConfig:
        for mount in self.mounts:
            for file in self.files:
                if file.guest_path == mount.path or file.guest_path.startswith(
                    mount.path.rstrip("/") + "/"
                ):
                    raise ValueError(
                        f"files entry {file.guest_path!r} lies inside the volume mounted at "
                        f"{mount.path!r}: the volume would hide it; write it elsewhere"
                    )
        return self

    @field_validator("statics", mode="before")
    @classmethod
    def _no_statics(cls, value: object) -> object:
        return [] if value is None else value  # Fly's clients may send null for none

    @field_validator("statics")
    @classmethod
    def _statics_need_pinned_image(
        cls, value: list[StaticConfig], info: ValidationInfo
    ) -> list[StaticConfig]:
        image = info.data.get("image", "")
        if value and is_request(info) and "@sha256:" not in image:
            raise ValueError(
                "statics need an image pinned by digest (registry/repo@sha256:…), "
                f"got {image!r}: the edge serves the files of exactly that image"
            )
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, value: dict[str, str]) -> dict[str, str]:
        problem = metadata_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _size_or_guest(self) -> MachineConfig:
        if self.size is not None and self.guest is not None:
            raise ValueError("give either 'size' or 'guest', not both")
        if self.size is not None:
            preset(self.size)
        return self

    @classmethod
    def from_request(cls, data: Any) -> MachineConfig:
        """Parse a config sent to the Machines API: every field is honoured or refused by name.

        Raises pydantic's ``ValidationError`` naming the field (``mounts``,
        ``services.0.ports.0.handlers``, an unknown ``flux_capacitor`` …).
        """
        return cls.model_validate(data, context={REQUEST_CONTEXT: True})

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
    SUSPENDING = "suspending"  # the agent is freezing its processes
    SUSPENDED = "suspended"  # processes frozen, memory kept; ``start`` thaws them
    RESTARTING = "restarting"
    REPLACING = "replacing"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    FAILED = "failed"


class DesiredState(StrEnum):
    """What the control plane wants a machine to be; the agent drives actual state there."""

    STARTED = "started"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
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
    ``cordoned`` (Fly's field) keeps the edges from sending it new requests.

    ``private_ip`` is Fly's: the machine's 6PN address
    (``fdaa:<network>:<host>:<machine>::2``, ``ferry.net.sixpn``), given when the
    machine is created and kept across restarts and updates; ``FLY_PRIVATE_IP``
    inside the machine. ``host_ip`` (Ferry-only) is the host-local IPv4 address
    on the host's machine bridge by which the edge, health checks and wake reach
    the machine until the edge speaks 6PN; it is not the machine's private address.
    """

    id: str
    name: str
    app_name: str
    state: MachineState
    desired_state: DesiredState
    region: str
    instance_id: str
    private_ip: str
    host_ip: str
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
    cordoned: bool = False
    revision: int = 0

    @property
    def effective_stop(self) -> StopConfig:
        """How the agent stops this machine now: the pending stop request over the config's."""
        base = self.config.effective_stop
        return self.stop_override.over(base) if self.stop_override is not None else base


class MachineVersion(_Frozen):
    """One config a machine had (Fly's ``GET …/versions`` item).

    ``version`` is the machine's ``instance_id`` while it ran that config;
    ``user_config`` is the config as the user gave it.
    """

    version: str
    user_config: MachineConfig
