"""Request bodies of the API. Responses are the ``ferry.model`` types themselves."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import InitErrorDetails

from ferry.model import CheckStatus, MachineConfig, MachineState, parse_duration

__all__ = [
    "SIGNALS",
    "CreateAppRequest",
    "CreateMachineRequest",
    "LogsUpload",
    "RegisterHostRequest",
    "SignalRequest",
    "StatusEvent",
    "StatusReport",
    "StopRequest",
    "UpdateMachineRequest",
    "normalize_signal",
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


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateAppRequest(_Body):
    app_name: str
    org_slug: str = "personal"
    network: str = "default"


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


class CreateMachineRequest(_Body):
    name: str | None = Field(default=None, min_length=1, max_length=63)
    region: str | None = None
    config: MachineConfig
    skip_launch: bool = False
    region_fallback: bool = False  # Ferry-only: place in the nearest region with room

    _config = model_validator(mode="before")(strict_machine_config)


class UpdateMachineRequest(_Body):
    config: MachineConfig
    current_version: str | None = None
    name: str | None = None
    region: str | None = None

    _config = model_validator(mode="before")(strict_machine_config)


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
    signal: str

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


class LogsUpload(_Body):
    lines: list[str]
