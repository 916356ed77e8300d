"""Running a command inside a machine: the Machines API's exec shapes and the hand-off to
the machine's agent.

- ``ExecRequest``: the body of ``POST /v1/apps/{app}/machines/{id}/exec`` in Fly's shape
  (``command`` argv, or the older ``cmd`` string split like a shell would, without
  running one; ``timeout`` seconds; ``stdin`` text).
- ``ExecOrder``: what the control plane hands the machine's host agent through its
  long poll (``GET /v1/hosts/{host}/exec-requests``).
- ``ExecOutcome``: what the agent posts back; ``ExecResponse`` is Fly's answer to the user.

Exec requests are transient: nothing here is stored.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field

from ferry.errors import ValidationError

__all__ = [
    "DEFAULT_EXEC_TIMEOUT",
    "MAX_ARGV_BYTES",
    "MAX_EXEC_TIMEOUT",
    "MAX_OUTPUT_BYTES",
    "MAX_STDIN_BYTES",
    "ExecOrder",
    "ExecOutcome",
    "ExecRequest",
    "ExecResponse",
]

#: Seconds a command may run when the request names no ``timeout`` (or 0).
DEFAULT_EXEC_TIMEOUT = 30
#: The longest ``timeout`` accepted, in seconds.
MAX_EXEC_TIMEOUT = 300
#: Bytes of stdout, and of stderr, kept of one command; the rest is dropped (``truncated``).
MAX_OUTPUT_BYTES = 1024 * 1024
#: Bytes of ``stdin`` accepted (UTF-8 encoded).
MAX_STDIN_BYTES = 1024 * 1024
#: Bytes of the whole argv accepted (UTF-8 encoded, one NUL per argument).
MAX_ARGV_BYTES = 64 * 1024


class ExecRequest(BaseModel):
    """Fly's ``MachineExecRequest``. Exactly one of ``command`` and ``cmd``.

    ``container`` and ``machine`` (Fly's multi-container choices) are accepted only
    when they ask for what Ferry does: the machine's one container.
    """

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = None
    cmd: str | None = None
    timeout: int | None = Field(default=None, ge=0, le=MAX_EXEC_TIMEOUT)
    stdin: str | None = None
    container: str | None = None
    machine: bool | None = None

    def argv(self) -> list[str]:
        """The argv to run. Raises ``ValidationError`` naming what is wrong."""
        if self.container or self.machine:
            raise ValidationError(
                "exec runs in the machine's one container: `container` and `machine` "
                "are not supported",
                hint="leave `container` and `machine` out",
            )
        if (self.command is None) == (self.cmd is None):
            raise ValidationError(
                "give the command to run as `command` (a list of arguments) or `cmd` "
                "(one string), not both and not neither",
                hint='e.g. {"command": ["ls", "-l", "/"]}',
            )
        if self.command is not None:
            argv = list(self.command)
        else:
            try:
                argv = shlex.split(self.cmd or "")
            except ValueError as exc:
                raise ValidationError(
                    f"cmd: cannot split it into arguments: {exc}",
                    hint="close the quotes, or send `command` as a list",
                ) from None
        if not argv or not argv[0]:
            raise ValidationError(
                "the command is empty", hint='name a program, e.g. {"command": ["ls"]}'
            )
        if any("\0" in arg for arg in argv):
            raise ValidationError("an argument of the command holds a NUL byte")
        if sum(len(arg.encode()) + 1 for arg in argv) > MAX_ARGV_BYTES:
            raise ValidationError(
                f"the command is longer than {MAX_ARGV_BYTES // 1024} KiB",
                hint="pass large data through `stdin`",
            )
        if self.stdin is not None and len(self.stdin.encode()) > MAX_STDIN_BYTES:
            raise ValidationError(
                f"stdin is larger than {MAX_STDIN_BYTES // (1024 * 1024)} MiB",
                hint="copy large files into the machine another way",
            )
        return argv

    def seconds(self) -> int:
        """The command's time limit in seconds (``DEFAULT_EXEC_TIMEOUT`` when unset or 0)."""
        return self.timeout or DEFAULT_EXEC_TIMEOUT


class ExecOrder(BaseModel):
    """One command for a host's agent to run in one instance of a machine.

    ``tty``: an interactive console: the agent runs ``argv`` on a terminal of
    ``cols`` x ``rows`` and dials the console relay (``/v1/hosts/{host}/console/{id}``)
    instead of answering an outcome; ``stdin`` and ``timeout`` are then unused.
    """

    id: str
    machine_id: str
    instance_id: str
    argv: list[str]
    stdin: str = ""
    timeout: int = DEFAULT_EXEC_TIMEOUT
    tty: bool = False
    cols: int = Field(default=80, ge=1, le=1000)
    rows: int = Field(default=24, ge=1, le=1000)


class ExecOutcome(BaseModel):
    """What the agent reports back about one ``ExecOrder``.

    ``error``: the command could not be run at all (no such running container); the
    other fields are then empty. ``timed_out``: it was killed at its time limit.
    ``truncated``: stdout or stderr went past ``MAX_OUTPUT_BYTES`` and was cut.
    """

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    exit_signal: int | None = None
    timed_out: bool = False
    truncated: bool = False
    error: str | None = None


class ExecResponse(BaseModel):
    """Fly's answer to exec (``flydv1.ExecResponse``) plus Ferry's ``truncated``."""

    stdout: str
    stderr: str
    exit_code: int
    exit_signal: int | None = None
    truncated: bool = False
