"""``[deploy] release_command``: run once in a temporary machine before any machine is replaced.

As on Fly: the machine runs the new image with the app's config, its CMD
replaced by the command (the ENTRYPOINT stays), ``RELEASE_COMMAND=1`` in its
environment, no services and no checks (so the edge never routes to it), and
no restarts. Its output is shown; exit code 0 lets the deploy go on, anything
else — a non-zero exit, a failure to start, or no exit within
``release_command_timeout`` — aborts it before a machine is touched. The
temporary machine is destroyed in every case (Fly marks it ``auto_destroy``;
Ferry destroys it itself once its exit code and output are read).

``release_machine_config`` is pure; ``ReleaseCommand`` drives the client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ferry.errors import ApiError
from ferry.model import Machine, MachineConfig, MachineState, RestartPolicy

__all__ = ["RELEASE_PROCESS_GROUP", "ReleaseCommand", "ReleaseOutcome", "release_machine_config"]

#: The process group flyctl gives the release command's machine.
RELEASE_PROCESS_GROUP = "fly_app_release_command"
_ENDED = (MachineState.STOPPED, MachineState.FAILED, MachineState.DESTROYED)
#: How often the release machine is polled for its exit.
POLL_SECONDS = 0.2
#: The agent ships logs about once a second; output is read until a read this long after
#: the previous one adds nothing, at most ``LOG_READS`` times.
LOG_SETTLE_SECONDS = 1.2
LOG_READS = 4


def release_machine_config(base: MachineConfig, command: Sequence[str]) -> MachineConfig:
    """The temporary machine's config: ``base`` with CMD = ``command``, ``RELEASE_COMMAND=1``,
    no services or checks, no restarts, and the release process group. Pure."""
    return base.model_copy(
        update={
            "init": base.init.model_copy(update={"cmd": list(command)}),
            "env": {**base.env, "RELEASE_COMMAND": "1"},
            "services": [],
            "checks": {},
            "restart": RestartPolicy(policy="no", max_retries=0),
            "mounts": [],  # the app's machines own their volumes, as on Fly
            "metadata": {**base.metadata, "fly_process_group": RELEASE_PROCESS_GROUP},
        }
    )


class ReleaseClient(Protocol):
    """The slice of ``FerryClient`` the release command uses."""

    def create_machine(
        self,
        app: str,
        config: MachineConfig,
        *,
        region: str | None = None,
        name: str | None = None,
        skip_launch: bool = False,
        region_fallback: bool = False,
    ) -> Machine: ...

    def get_machine(self, app: str, machine_id: str) -> Machine: ...

    def delete_machine(self, app: str, machine_id: str, *, force: bool = False) -> None: ...

    def machine_logs(self, app: str, machine_id: str, *, tail: int = 200) -> list[str]: ...


@dataclass(frozen=True)
class ReleaseOutcome:
    """What the release command did. ``failure`` is a sentence when the deploy must stop."""

    machine_id: str | None
    exit_code: int | None
    output: tuple[str, ...]
    failure: str | None

    @property
    def ok(self) -> bool:
        return self.failure is None


class ReleaseCommand:
    """Runs the release command once. Blocking, bounded by ``timeout`` plus a few seconds
    for the output; raises only what the client raises outside its calls' ``ApiError``s."""

    def __init__(
        self,
        client: ReleaseClient,
        app: str,
        *,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._app = app
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep

    def run(self, base: MachineConfig, command: Sequence[str], region: str) -> ReleaseOutcome:
        """Create the release machine in ``region``, wait for its exit, read its output,
        destroy it. Never leaves the machine behind when the API answers."""
        shown = " ".join(command)
        try:
            machine = self._client.create_machine(
                self._app,
                release_machine_config(base, command),
                region=region,
                region_fallback=True,
            )
        except ApiError as exc:
            return ReleaseOutcome(
                None, None, (), f"could not create the release_command machine: {exc.message}"
            )
        try:
            finished = self._wait_exit(machine)
            output = self._output(machine.id)
        finally:
            self._destroy(machine.id)
        if finished is None:
            return ReleaseOutcome(
                machine.id,
                None,
                output,
                f"release_command `{shown}` did not finish within {self._timeout:g}s; "
                f"its machine {machine.id} was destroyed",
            )
        code = finished.exit_code
        if finished.state is MachineState.STOPPED and code == 0:
            return ReleaseOutcome(machine.id, 0, output, None)
        if code is None:
            why = f"release_command `{shown}` could not run (machine {machine.id} failed)"
        else:
            why = f"release_command `{shown}` exited with code {code}"
        return ReleaseOutcome(machine.id, code, output, why)

    def _wait_exit(self, machine: Machine) -> Machine | None:
        """The machine once stopped or failed, or ``None`` at the timeout."""
        deadline = self._clock() + self._timeout
        while self._clock() < deadline:
            try:
                latest = self._client.get_machine(self._app, machine.id)
            except ApiError:
                return None
            if latest.state in _ENDED:
                return latest
            self._sleep(POLL_SECONDS)
        return None

    def _output(self, machine_id: str) -> tuple[str, ...]:
        """The machine's output, read until it stops growing (bounded)."""
        lines: list[str] = []
        for attempt in range(LOG_READS):
            if attempt:
                self._sleep(LOG_SETTLE_SECONDS)
            try:
                latest = self._client.machine_logs(self._app, machine_id, tail=1000)
            except ApiError:
                break
            if attempt and len(latest) == len(lines):
                break
            lines = latest
        return tuple(lines)

    def _destroy(self, machine_id: str) -> None:
        # Already gone is fine: nothing else to do for a temporary machine.
        with contextlib.suppress(ApiError):
            self._client.delete_machine(self._app, machine_id, force=True)
