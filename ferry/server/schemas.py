"""Request bodies of the API. Responses are the ``ferry.model`` types themselves."""

from __future__ import annotations

import signal as signal_module
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails

from ferry.model import CheckStatus, MachineConfig, MachineState, parse_duration
from ferry.model.lease import MAX_LEASE_TTL

__all__ = [
    "SIGNALS",
    "AcquireLeaseRequest",
    "CreateAppRequest",
    "CreateMachineRequest",
    "LogsUpload",
    "RegisterHostRequest",
    "SetMetadataRequest",
    "SignalRequest",
    "StatusEvent",
    "StatusReport",
    "StopRequest",
    "UpdateMachineRequest",
    "normalize_signal",
    "signal_number_to_name",
]

#: The signals the Machines API accepts.
SIGNALS: Final = frozenset(
    {
        "SIGABRT",
        "SIGALRM",
        "SIGFPE",
        "SIGHUP",
        "SIGILL",
        "SIGINT",
        "SIGKILL",
        "SIGPIPE",
        "SIGQUIT",
        "SIGSEGV",
        "SIGTERM",
        "SIGTRAP",
        "SIGUSR1",
        "SIGUSR2",
    }
)


def normalize_signal(value: str | None) -> str | None:
    """``"usr1"`` → ``"SIGUSR1"``; raises ``ValueError`` naming the known signals."""
    if value is None:
        return None
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name not in SIGNALS:
        raise ValueError(f"unknown signal {value!r}; use one of {', '.join(sorted(SIGNALS))}")
    return name


def signal_number_to_name(value: object) -> object:
    """``9`` → ``"SIGKILL"``; anything else unchanged (``normalize_signal`` checks names)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal_module.Signals(value).name
        except ValueError:
            raise ValueError(f"unknown signal number {value}") from None
    return value


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateAppRequest(_Body):
    """Fly's create-app body; the name comes as ``app_name`` or (Fly's newer) ``name``."""

    app_name: str | None = None
    name: str | None = None
    org_slug: str = "personal"
    network: str = "default"

    @model_validator(mode="after")
    def _one_name(self) -> CreateAppRequest:
        if (self.app_name is None) == (self.name is None):
            given = "both" if self.app_name is not None else "neither"
            raise ValueError(f"give the app's name as 'app_name' or 'name' ({given} was given)")
        return self

    @property
    def wanted_name(self) -> str:
        return self.app_name if self.app_name is not None else str(self.name)


def strict_machine_config(data: object) -> object:
    """A request body whose ``config`` is parsed with every Fly field honoured or refused.

    Raises pydantic's ``ValidationError`` with each error located under
    ``config`` (``config.services.0.ports.0.handlers``, ``config.image`` …),
    so the 400 names the field.
    """
    if not isinstance(data, dict) or "config" not in data:
        return data
    try:
        config = MachineConfig.from_request(data["config"])
    except PydanticValidationError as exc:
        details = [
            InitErrorDetails(
                type=error["type"],
                loc=("config", *error["loc"]),
                input=error["input"],
                ctx=error.get("ctx", {}),
            )
            for error in exc.errors()
        ]
        raise PydanticValidationError.from_exception_data(exc.title, details) from None
    return {**data, "config": config}


class _MachineBody(_Body):
    """Fields Fly's create and update bodies share. Any key not listed is refused (400
    naming it), never dropped: a Fly client's request either works or says why not."""

    model_config = ConfigDict(extra="forbid")

    config: MachineConfig
    name: str | None = Field(default=None, min_length=1, max_length=63)
    region: str | None = None
    skip_launch: bool = False
    skip_service_registration: bool = False
    lsvd: bool = False
    skip_secrets: bool = False
    min_secrets_version: int | None = None

    _config = model_validator(mode="before")(strict_machine_config)

    @model_validator(mode="after")
    def _refuse_what_ferry_lacks(self) -> _MachineBody:
        if self.lsvd:
            raise ValueError(
                "'lsvd' (log-structured virtual disks) is not supported: Ferry machines are "
                "containers; leave it out"
            )
        if self.min_secrets_version:
            raise ValueError(
                "'min_secrets_version' is not supported yet: every start reads the app's "
                "current secrets; leave it out"
            )
        if self.skip_secrets:
            raise ValueError(
                "'skip_secrets' is not supported yet: every Ferry machine starts with its "
                "app's secrets; leave it out"
            )
        return self


class CreateMachineRequest(_MachineBody):
    """Fly's create body. ``skip_service_registration`` creates the machine cordoned (the
    edges send it no requests until ``uncordon``), which is what it means on Fly."""

    region_fallback: bool = False  # Ferry-only: place in the nearest region with room
    lease_ttl: int = Field(default=0, ge=0, le=MAX_LEASE_TTL)  # 0: create without a lease


class UpdateMachineRequest(_MachineBody):
    """Fly's update body. ``skip_launch`` and ``skip_service_registration`` are refused when
    true: an update restarts a running machine and keeps its cordon as it is."""

    current_version: str | None = None

    @model_validator(mode="after")
    def _refuse_update_flags(self) -> UpdateMachineRequest:
        for flag in ("skip_launch", "skip_service_registration"):
            if getattr(self, flag):
                raise ValueError(
                    f"'{flag}' is not supported on update yet: stop the machine (or cordon it) "
                    "before or after the update instead"
                )
        return self


class StopRequest(_Body):
    signal: str | None = None
    timeout: str | int | float | None = None

    _signal = field_validator("signal")(normalize_signal)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | int | float | None) -> str | int | float | None:
        if value is not None:
            try:
                parse_duration(value)
            except Exception as exc:
                raise ValueError(f"invalid timeout {value!r}; write it like '10s'") from exc
        return value


class SignalRequest(_Body):
    """``{"signal": "SIGUSR1"}``; fly-go's ``Kill`` sends the number (``{"signal": 9}``)."""

    signal: str

    _number = field_validator("signal", mode="before")(signal_number_to_name)
    _signal = field_validator("signal")(normalize_signal)


class RegisterHostRequest(_Body):
    id: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    region: str = Field(min_length=2, max_length=16, pattern=r"^[a-z0-9-]+$")
    address: str = Field(min_length=1)
    cpus: int = Field(ge=1)
    memory_mb: int = Field(ge=64)
    machine_subnet: str


class StatusEvent(_Body):
    type: str = Field(min_length=1, max_length=32)
    status: str = Field(min_length=1, max_length=64)
    reason: str | None = None


class StatusReport(_Body):
    state: MachineState
    instance_id: str
    exit_code: int | None = None
    event: StatusEvent
    restart_count: int | None = Field(default=None, ge=0)
    checks: list[CheckStatus] | None = None


#: One log upload: at most this many lines (the store keeps the last 1000 of a machine) ...
MAX_LOG_LINES_PER_UPLOAD = 1000
#: ... each of at most this many characters (the agent cuts longer lines into pieces).
MAX_LOG_LINE_CHARS = 16 * 1024


class LogsUpload(_Body):
    lines: list[Annotated[str, Field(max_length=MAX_LOG_LINE_CHARS)]] = Field(
        max_length=MAX_LOG_LINES_PER_UPLOAD
    )


class AcquireLeaseRequest(_Body):
    """fly-go's ``AcquireLeaseRequest``; ``ttl`` may come as ``?ttl=`` (fly-go sends that).
    Any other key is refused (400 naming it)."""

    model_config = ConfigDict(extra="forbid")

    ttl: int | None = Field(default=None, ge=1, le=MAX_LEASE_TTL)
    description: str | None = Field(default=None, max_length=256)


class SetMetadataRequest(_Body):
    """The body of ``POST …/metadata/{key}``; any other key is refused (400 naming it)."""

    model_config = ConfigDict(extra="forbid")

    value: str
