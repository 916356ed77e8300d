"""The fakes the agent's tests share: one machine on one host, and a log sink."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.errors import UnavailableError
from ferry.model import DesiredState, Machine, MachineConfig, MachineState
from ferry.model.machine import StopOverride

__all__ = ["RecordingSink", "host_machine"]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def host_machine(
    *,
    state: MachineState = MachineState.STARTED,
    desired: DesiredState = DesiredState.STARTED,
    config: MachineConfig | None = None,
    stop_override: StopOverride | None = None,
    host_ip: str = "10.1.0.2",
) -> Machine:
    """Machine ``m1`` of app ``web``, instance ``i1``, image ``x`` unless ``config``, on ams-1."""
    return Machine(
        id="m1",
        name="m1",
        app_name="web",
        state=state,
        desired_state=desired,
        region="ams",
        instance_id="i1",
        private_ip="fdaa:0:1:0:1:0:1:2",
        host_ip=host_ip,
        config=MachineConfig(image="x") if config is None else config,
        host_id="ams-1",
        created_at=NOW,
        updated_at=NOW,
        stop_override=stop_override,
    )


class RecordingSink:
    """Where a ``LogShipper`` uploads: keeps every line; while ``down``, refuses as an
    unreachable control plane does."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.down = False

    def upload_logs(self, host_id: str, machine_id: str, lines: list[str]) -> object:
        if self.down:
            raise UnavailableError("control plane down")
        self.lines.extend(lines)
        return None
